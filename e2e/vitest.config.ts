import { defineConfig, mergeConfig } from "vitest/config";
import base from "../vitest.node.js";

// One suite at a time: each builds its own lab of namespaces, and timings are part of what it checks.
export default mergeConfig(base, defineConfig({ test: { fileParallelism: false } }));
