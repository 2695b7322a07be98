export * from "./agent.js";
export * from "./join.js";
export * from "./plugin-list.js";
export * from "./plugins.js";
export { runAgentCli } from "./program.js";
export * from "./spool.js";
