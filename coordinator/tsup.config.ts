import { bundleInternal, nodePackage } from "../tsup.shared.js";

export default nodePackage(["src/index.ts", "src/cli.ts", "src/testing.ts"], bundleInternal());
