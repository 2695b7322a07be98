import { defineConfig, type Options } from "tsup";

/** tsup settings shared by the Node packages: ESM for Node 20, with types and source maps. */
export function nodePackage(entry: Options["entry"], overrides: Options = {}) {
  return defineConfig({ entry, format: ["esm"], target: "node20", dts: true, sourcemap: true, clean: true, ...overrides });
}
