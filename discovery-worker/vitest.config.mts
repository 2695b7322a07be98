import { fileURLToPath } from "node:url";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const sdkProtoSource = fileURLToPath(new URL("../sdk-proto/src/index.ts", import.meta.url));

export default defineConfig(async () => ({
  test: {
    projects: [
      {
        // The Worker runs inside workerd with a real (local) D1, configured from the
        // root wrangler.toml exactly as `wrangler deploy` sees it.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "../wrangler.toml" },
            miniflare: {
              bindings: {
                TEST_MIGRATIONS: await readD1Migrations("./migrations"),
                ADMIN_TOKEN: "test-admin-token-0123456789abcdef0123",
                CORAL_DEBUG_D1: "1",
              },
            },
          }),
        ],
        // Tests run against sdk-proto's source; `wrangler deploy` bundles its built dist/.
        resolve: { alias: { "@coral-mesh/sdk-proto": sdkProtoSource } },
        test: { name: "workerd", include: ["test/**/*.test.ts"], setupFiles: ["./test/apply-migrations.ts"] },
      },
      {
        // The same schema and migrations on better-sqlite3, in Node.
        test: { name: "node", include: ["test-node/**/*.test.ts"], environment: "node" },
      },
    ],
  },
}));
