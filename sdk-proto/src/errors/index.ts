export * from "./issues.js";
export * from "./registry.js";
