import { defineConfig } from "vitest/config";

// Shared by the Node packages. Workspace packages are read from their source in tests
// (the "coral-source" export condition); builds and published code use their dist/.
export default defineConfig({
  resolve: { conditions: ["coral-source"] },
  ssr: { resolve: { conditions: ["coral-source"] } },
  test: { include: ["test/**/*.test.ts"] },
});
