import { nodePackage } from "../tsup.shared.js";

export default nodePackage(["src/index.ts", "src/testing.ts"], { external: ["vitest"] });
