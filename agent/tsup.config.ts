import { execFileSync } from "node:child_process";
import { build } from "esbuild";
import { nodePackage } from "../tsup.shared.js";
import { agentNodeFlags } from "./src/boot.js";

// All but @grpc/proto-loader, which grpc-js requires only to serve channelz and ORCA: the
// agent serves neither, and in a bundle they could not find their .proto files anyway.
const bundled = /^(?!@grpc\/proto-loader$)/;

// The agent runs on every host, so it ships with its dependencies inlined: loading one file
// instead of a few hundred modules takes ~17 MB less memory and a smaller heap for the
// garbage collector to walk. `require` is provided for the CommonJS ones.
// No declarations: the agent is a command, and its "." export serves this workspace's tests,
// which read it from source; declarations would name packages an install does not have.
export default nodePackage(["src/index.ts", "src/cli.ts", "src/boot.ts"], {
  dts: false,
  noExternal: [bundled],
  external: ["@grpc/proto-loader"],
  minify: true,
  esbuildOptions(options) {
    options.conditions = ["coral-source"];
  },
  banner: { js: 'import { createRequire as __coralRequire } from "node:module"; const require = __coralRequire(import.meta.url);' },
  // What `coral-agent` runs: the program as one CommonJS bundle, and V8's code cache for it (see src/boot.ts).
  async onSuccess() {
    await build({
      entryPoints: ["src/program.ts"],
      outfile: "dist/agent.cjs",
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node20",
      minify: true,
      sourcemap: true,
      conditions: ["coral-source"],
      external: ["@grpc/proto-loader"],
      logLevel: "warning",
    });
    // What bin/coral-agent.cjs loads the bundle with: the same loader, as CommonJS, which the
    // command passes its directory (it has no import.meta.url, which only the ES build uses).
    await build({
      entryPoints: ["src/boot.ts"],
      outfile: "dist/boot.cjs",
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node20",
      logLevel: "warning",
      logOverride: { "empty-import-meta": "silent" },
    });
    // Under the flags the agent runs with: V8 rejects a cache written under others.
    const flags = agentNodeFlags("src");
    execFileSync(process.execPath, [...flags, "--input-type=module", "-e", 'await (await import("./dist/boot.js")).writeCodeCache()'], {
      stdio: "inherit",
    });
  },
});
