import { defineConfig } from "tsup";

// The Worker itself is bundled by wrangler; this builds what Node code imports from
// this package: the drizzle schema (for a self-hosted discovery) and the local launcher.
export default defineConfig({
  entry: { "db/schema": "src/db/schema.ts", local: "scripts/local.ts" },
  format: ["esm"],
  target: "node20",
  dts: true,
  sourcemap: true,
  clean: true,
  tsconfig: "tsconfig.node.json",
});
