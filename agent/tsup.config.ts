import { nodePackage } from "../tsup.shared.js";

// The agent runs on every host, so it ships as one bundle with its dependencies inlined:
// loading one file instead of a few hundred modules takes ~17 MB less memory and a smaller
// heap for the garbage collector to walk. `require` is provided for the CommonJS ones.
export default nodePackage(["src/index.ts", "src/cli.ts"], {
  // All but @grpc/proto-loader, which grpc-js requires only to serve channelz and ORCA: the
  // agent serves neither, and in a bundle they could not find their .proto files anyway.
  noExternal: [/^(?!@grpc\/proto-loader$)/],
  external: ["@grpc/proto-loader"],
  minify: true,
  esbuildOptions(options) {
    options.conditions = ["coral-source"];
  },
  banner: { js: 'import { createRequire as __coralRequire } from "node:module"; const require = __coralRequire(import.meta.url);' },
});
