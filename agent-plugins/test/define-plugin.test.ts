import { describe, expect, it } from "vitest";
import * as z from "zod";
import { definePlugin, PLUGIN_API_VERSION, PluginDefinitionError } from "../src/index.js";

const valid = {
  name: "redis-collector",
  version: "1.2.3",
  apiVersion: PLUGIN_API_VERSION,
  options: z.object({ url: z.string() }),
  collect: () => {},
};

describe("definePlugin", () => {
  it("accepts a well-formed plugin and freezes it", () => {
    const plugin = definePlugin(valid);
    expect(plugin.name).toBe("redis-collector");
    expect(Object.isFrozen(plugin)).toBe(true);
    expect(plugin.options.safeParse({ url: "redis://127.0.0.1" }).success).toBe(true);
  });

  it("names the plugin and the field when the identity is wrong", () => {
    expect(() => definePlugin({ ...valid, name: "Redis Collector" })).toThrow(/name: a plugin name is lowercase/);
    expect(() => definePlugin({ ...valid, version: "one" })).toThrow(/plugin "redis-collector": version: a plugin version is semver/);
    expect(() => definePlugin({ ...valid, options: {} as never })).toThrow(PluginDefinitionError);
  });

  it("refuses another plugin API version with the fix in the message", () => {
    expect(() => definePlugin({ ...valid, apiVersion: PLUGIN_API_VERSION + 1 })).toThrow(
      /targets plugin API 2, but this agent speaks API 1/,
    );
  });
});

describe("checkPlugin", () => {
  it("refuses a plugin that does nothing, or hooks that are not functions", () => {
    const { collect: _, ...idle } = valid;
    expect(() => definePlugin(idle)).toThrow(/define collect, or start and stop/);
    expect(() => definePlugin({ ...valid, stop: "later" as never })).toThrow(/stop must be a function/);
  });
});
