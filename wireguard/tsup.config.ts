import { nodePackage } from "../tsup.shared.js";

export default nodePackage({ index: "src/index.ts", path: "src/path/index.ts", testing: "src/testing/index.ts" });
