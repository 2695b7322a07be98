import { nodePackage } from "../tsup.shared.js";

// sdk-proto runs everywhere (Node, browsers, workerd), so it targets the language, not Node.
export default nodePackage(["src/index.ts"], { target: "es2022" });
