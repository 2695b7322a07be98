import { bundleInternal, nodePackage } from "../tsup.shared.js";

export default nodePackage(
  {
    index: "src/index.ts",
    testing: "src/testing.ts",
    "passive/index": "src/passive/index.ts",
    "sdk/index": "src/sdk/index.ts",
    "ebpf/index": "src/ebpf/index.ts",
  },
  { ...bundleInternal(), external: ["vitest"] },
);
