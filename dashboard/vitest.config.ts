import { defineConfig, mergeConfig } from "vitest/config";
import shared from "../vitest.node.js";

// A real coordinator and a real browser on a shared, busy machine: generous timeouts.
export default mergeConfig(shared, defineConfig({ test: { testTimeout: 120_000, hookTimeout: 240_000 } }));
