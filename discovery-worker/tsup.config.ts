import { nodePackage } from "../tsup.shared.js";

// The Worker itself is bundled by wrangler; this builds what Node code imports from
// this package: the drizzle schema (for a self-hosted discovery) and the local launcher.
export default nodePackage({ "db/schema": "src/db/schema.ts", local: "scripts/local.ts" }, { tsconfig: "tsconfig.node.json" });
