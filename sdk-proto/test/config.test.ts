import { describe, expect, it } from "vitest";
import { agentConfigSchema, coordinatorConfigSchema, parseConfigFile } from "../src/index.js";

describe("config files", () => {
  it("accept a valid agent config", () => {
    const text = JSON.stringify({ name: "web-1", heartbeatInterval: "10s", plugins: { passive: { exclude: ["sshd"] }, "./my.js": {} } });
    const result = parseConfigFile(text, agentConfigSchema, "agent.json");
    expect(result).toMatchObject({ ok: true, value: { name: "web-1", plugins: { passive: { exclude: ["sshd"] } } }, warnings: [] });
  });

  it("report every problem at once, each with its path and the file's name", () => {
    const text = JSON.stringify({ name: "Web 1", heartbeatInterval: "10 seconds", pluginz: {} });
    const result = parseConfigFile(text, agentConfigSchema, "agent.json");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => e.path).sort()).toEqual(["heartbeatInterval", "name", "pluginz"]);
    expect(result.errors.find((e) => e.path === "pluginz")?.message).toBe(
      "agent.json: pluginz: unknown setting pluginz (check the spelling)",
    );
    expect(result.errors.find((e) => e.path === "heartbeatInterval")?.message).toContain('"10s"');
  });

  it("say where JSON is broken, and warn about nulls instead of failing", () => {
    const broken = parseConfigFile("{ nope", coordinatorConfigSchema, "coordinator.json");
    expect(broken.ok).toBe(false);
    if (!broken.ok) expect(broken.errors[0]?.message).toMatch(/^coordinator\.json is not valid JSON: /);
    const withNull = parseConfigFile(JSON.stringify({ listenPort: 51820, discovery: null }), coordinatorConfigSchema, "c.json");
    expect(withNull).toMatchObject({ ok: true, value: { listenPort: 51820 }, warnings: [{ path: "discovery" }] });
  });

  it("require a long API token when one is given", () => {
    const result = parseConfigFile(JSON.stringify({ api: { host: "0.0.0.0", token: "short" } }), coordinatorConfigSchema, "c.json");
    expect(result.ok).toBe(false);
    if (!result.ok)
      expect(result.errors[0]).toMatchObject({ path: "api.token", message: expect.stringContaining("at least 32 characters") });
  });
});
