import { nodePackage } from "../tsup.shared.js";

// "." runs everywhere (Node, browsers, workerd), so it targets the language, not Node;
// "./grpc" and "./sdk" are Node-only and never imported by the Worker.
export default nodePackage({ index: "src/index.ts", grpc: "src/grpc.ts", sdk: "src/sdk/index.ts" }, { target: "es2022" });
