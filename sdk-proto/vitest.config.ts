import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["coral-source"] },
  test: { include: ["test/**/*.test.ts"] },
});
