import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parsePluginList } from "../src/plugin-list.js";
import { loadPlugins } from "../src/plugins.js";

const agentDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const load = async (list: string, options: Record<string, unknown> = {}) => loadPlugins(parsePluginList(list), options, agentDir);

describe("loading plugins", () => {
  it("loads a plugin by npm package name and by path, with its options validated", async () => {
    const loaded = await load("coral-plugin-sample,./test/fixtures/broken-plugin.js", { "coral-plugin-sample": { label: "web" } });
    expect(loaded.map((p) => [p.ref, p.plugin.name, p.options])).toEqual([
      ["coral-plugin-sample", "sample", { label: "web" }],
      ["./test/fixtures/broken-plugin.js", "broken", {}],
    ]);
  });

  it("loads the built-in collectors by name", async () => {
    const loaded = await load("passive,sdk,ebpf", { passive: { exclude: ["^kworker"] } });
    expect(loaded.map((l) => [l.ref, l.plugin.name, l.options])).toEqual([
      ["passive", "passive", { exclude: ["^kworker"] }],
      ["sdk", "sdk", {}],
      ["ebpf", "ebpf", {}],
    ]);
  });

  it("says in one line what is wrong and how to fix it", async () => {
    await expect(load("coral-plugin-nonexistent")).rejects.toThrow(
      'Plugin "coral-plugin-nonexistent" was not found: install it (npm install coral-plugin-nonexistent).',
    );
    await expect(load("./nope.js")).rejects.toThrow(
      `Plugin "./nope.js" was not found: check the path (${agentDir}/nope.js does not exist).`,
    );
    await expect(load("coral-plugin-sample", { sample: { label: "" } })).rejects.toThrow(
      /^plugin "sample" options: label must not be empty; fix them in the config file or with --set\.$/,
    );
    await expect(load("./test/fixtures/broken-plugin.js,./test/fixtures/broken-plugin.js")).rejects.toThrow(/listed twice/);
  });

  it("names the missing dependency of a plugin that is there, rather than sending the user to check its path", async () => {
    const failure = await load("./test/fixtures/needs-dependency.js").catch((error: unknown) => error);
    expect(failure).toMatchObject({
      code: "plugin_dependency_missing",
      message:
        'Plugin "./test/fixtures/needs-dependency.js" needs "coral-test-dependency-not-installed", which is not installed: install it where the plugin is (npm install coral-test-dependency-not-installed, in the plugin\'s directory).',
    });
  });
});
