export * from "./contract.js";
export * from "./host.js";
