/**
 * The CLI's edge: what a person (or a script, with `--json`) reads when something is wrong.
 * Against the real API on loopback over a real store, and the real binary where it starts a
 * coordinator.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/index.js";
import { openStore, type Store } from "../src/store/db.js";
import { agents } from "../src/store/schema.js";
import { tsxNode } from "../src/testing.js";
import { modelApi } from "./fixtures/model-api.js";

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

let dir: string;
let db: Store;
let api: string;
let server: ReturnType<typeof serve>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coral-cli-errors-"));
  db = openStore(join(dir, "data", "coral.db"));
  const app = await modelApi(db, dir);
  await new Promise<void>((ready) => {
    server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => {
      api = `http://127.0.0.1:${info.port}`;
      ready();
    });
  });
});

afterAll(async () => {
  await new Promise((done) => server?.close(done));
  db?.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

const tokens = async () => JSON.parse((await run("token", "list", "--api", api, "--json")).out) as Array<{ name: string | null }>;

describe("coral's errors", () => {
  it("print their code: coral: [code] message", async () => {
    const result = await run("token", "revoke", "nope", "--api", api);
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/^coral: \[token_unknown\] .+\n$/);
    expect(result.out).toBe("");
  });

  it("with --json, are one JSON document on stdout, with a non-zero exit", async () => {
    const result = await run("token", "revoke", "nope", "--api", api, "--json");
    expect(result.code).toBe(1);
    expect(result.err).toBe("");
    expect(JSON.parse(result.out)).toEqual({
      error: { code: "token_unknown", message: expect.any(String), docs: "docs/errors.md#token_unknown" },
    });
    const usage = await run("events", "--json", "--limit");
    expect(usage.code).toBe(2);
    expect(usage.err).toBe("");
    expect(JSON.parse(usage.out)).toMatchObject({ error: { code: "usage_invalid", message: expect.stringContaining("--limit") } });
    const unreachable = await run("status", "--api", "http://127.0.0.1:9", "--json");
    expect(unreachable.code).toBe(1);
    expect(JSON.parse(unreachable.out)).toMatchObject({ error: { code: "coordinator_unreachable" } });
  });

  it("say validation problems in words, naming the flag: --ttl 0s is 'the TTL must be at least 1s'", async () => {
    const zero = await run("token", "create", "--ttl", "0s", "--api", api);
    expect(zero.code).toBe(1);
    expect(zero.err).toBe("coral: [config_invalid] the TTL must be at least 1s (--ttl 0s).\n");
    const many = await run("token", "create", "--ttl", "400d", "--uses", "0", "--api", api, "--json");
    expect(JSON.parse(many.out)).toMatchObject({
      error: {
        code: "config_invalid",
        message: "the TTL must be at most 365d (--ttl 400d); the number of uses must be at least 1 (--uses 0).",
      },
    });
    expect(await tokens()).toEqual([]);
  });

  it("the API says the same in words to any client", async () => {
    const response = await fetch(`${api}/v1/tokens`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ttlMs: 0, uses: 1 }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      code: "invalid_body",
      message: "the TTL must be at least 1s.",
      details: { issues: [{ path: "ttlMs", message: "the TTL must be at least 1s" }] },
    });
  });

  it("refuse an option as the value of another: token create --name --json makes no token named --json", async () => {
    const result = await run("token", "create", "--name", "--json", "--api", api);
    expect(result.code).toBe(2);
    expect(JSON.parse(result.out)).toMatchObject({
      error: { code: "usage_invalid", message: expect.stringContaining('--name needs a value, and "--json" after it is an option') },
    });
    expect(await tokens()).toEqual([]);
    // Said with `=`, it is meant.
    const meant = await run("token", "create", "--name=--json", "--api", api, "--json");
    expect(meant.code).toBe(0);
    expect((await tokens()).map((t) => t.name)).toEqual(["--json"]);
  });
});

describe("coral coordinator start --api-token", () => {
  const cli = resolve(dirname(fileURLToPath(import.meta.url)), "../src/cli.ts");

  it.each([
    ["the flag", ["--api-token", "short-token"], {}],
    ["CORAL_API_TOKEN", [], { CORAL_API_TOKEN: "x".repeat(31) }],
  ])("shorter than 32 characters, from %s, is refused before anything is made", (_from, flags, env) => {
    const dataDir = join(dir, `start-${Math.random().toString(36).slice(2)}`);
    const result = spawnSync(
      tsxNode[0] as string,
      [...tsxNode.slice(1), cli, "coordinator", "start", "--discovery", "http://127.0.0.1:9", "--data-dir", dataDir, ...flags],
      { cwd: dirname(cli), encoding: "utf8", env: { ...process.env, ...env } },
    );
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^coral: \[api_token_short\] The API token is \d+ characters long; it must be at least 32/);
    expect(result.stderr).not.toContain("short-token");
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe("coral status and coral agents, where a plugin is not running", () => {
  it("show the reason in the table's output, not only in --json", async () => {
    const reason = "emitted a malformed event (kind: an event kind is dotted lowercase); it was dropped";
    db.insert(agents)
      .values({
        name: "web-1",
        wireguardKey: "k1",
        meshIp: "100.64.0.2",
        enrolledAt: Date.now(),
        lastHeartbeatAt: Date.now(),
        addresses: [],
        plugins: JSON.stringify([
          { name: "passive", state: "running", lastError: null },
          { name: "sdk", state: "degraded", lastError: reason },
        ]),
      })
      .run();
    for (const command of ["status", "agents"]) {
      const result = await run(command, "--api", api);
      expect(result.code).toBe(0);
      expect(result.out).toMatch(/web-1\s+100\.64\.0\.2\s+degraded\s+.*passive, sdk \(degraded\)/);
      expect(result.out).toContain(`Plugins not running:\n  web-1 sdk degraded: ${reason}\n`);
    }
  }, 30_000); // two CLI runs through tsx: seconds each on a busy host
});
