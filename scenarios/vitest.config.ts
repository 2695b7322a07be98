import { defineConfig, mergeConfig } from "vitest/config";
import base from "../vitest.node.js";

export default mergeConfig(base, defineConfig({}));
