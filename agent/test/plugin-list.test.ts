import { describe, expect, it } from "vitest";
import { parsePluginList } from "../src/index.js";

describe("--plugins", () => {
  it("tells built-ins, paths and npm packages apart", () => {
    expect(parsePluginList("passive, sdk,./my-collector.js,../x/y.mjs,/opt/c.js,coral-plugin-redis,@acme/coral-kafka")).toEqual([
      { kind: "builtin", name: "passive" },
      { kind: "builtin", name: "sdk" },
      { kind: "path", path: "./my-collector.js" },
      { kind: "path", path: "../x/y.mjs" },
      { kind: "path", path: "/opt/c.js" },
      { kind: "package", name: "coral-plugin-redis" },
      { kind: "package", name: "@acme/coral-kafka" },
    ]);
  });

  it("refuses what is none of them, duplicates, and an empty list, saying why", () => {
    expect(() => parsePluginList("passive,Not A Plugin")).toThrow(/"Not A Plugin" in --plugins is not a built-in \(passive, sdk, ebpf\)/);
    expect(() => parsePluginList("sdk,sdk")).toThrow(/listed twice/);
    expect(() => parsePluginList(" , ")).toThrow(/--plugins is empty/);
  });
});
