import { defineConfig, type Options } from "tsup";

/** tsup settings shared by the Node packages: ESM for Node 20, with types and source maps. */
export function nodePackage(entry: Options["entry"], overrides: Options = {}) {
  return defineConfig({ entry, format: ["esm"], target: "node20", dts: true, sourcemap: true, clean: true, ...overrides });
}

/** The workspace packages that are never published, by import specifier: their sources. */
const INTERNAL: Record<string, string> = {
  "@coral-mesh/sdk-proto": "sdk-proto/src/index.ts",
  "@coral-mesh/sdk-proto/grpc": "sdk-proto/src/grpc.ts",
  "@coral-mesh/sdk-proto/sdk": "sdk-proto/src/sdk/index.ts",
  "@coral-mesh/wireguard": "wireguard/src/index.ts",
  "@coral-mesh/wireguard/path": "wireguard/src/path/index.ts",
  "@coral-mesh/wireguard/testing": "wireguard/src/testing/index.ts",
};

/**
 * For a published package: the internal packages it imports (sdk-proto, wireguard) go into its
 * dist, code and types, so that installing it never needs them. The paths make the declaration
 * build read them as this package's own source, instead of leaving an import of a package the
 * user does not have.
 */
export function bundleInternal(): Options {
  const paths = Object.fromEntries(Object.entries(INTERNAL).map(([specifier, source]) => [specifier, [`../${source}`]]));
  return {
    noExternal: [/^@coral-mesh\/(sdk-proto|wireguard)(\/|$)/],
    esbuildOptions(options) {
      options.conditions = ["coral-source"];
    },
    dts: { compilerOptions: { paths } },
  };
}
