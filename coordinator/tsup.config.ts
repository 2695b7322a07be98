import { bundleInternal, nodePackage } from "../tsup.shared.js";

// The findings engine's worker is an entry of its own: a thread loads it by file (analysis/host.ts).
export default nodePackage(
  {
    index: "src/index.ts",
    cli: "src/cli.ts",
    testing: "src/testing.ts",
    "ask-testing": "src/ask-testing.ts",
    "analysis-worker": "src/analysis/worker.ts",
  },
  bundleInternal(),
);
