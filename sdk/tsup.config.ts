import { bundleInternal, nodePackage } from "../tsup.shared.js";

export default nodePackage({ index: "src/index.ts" }, bundleInternal());
