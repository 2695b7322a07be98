export type { AgentView, CreatedTokenView, StatusView, TokenView } from "./api/app.js";
export { checkDiscovery, type DiscoveryCheck } from "./cli/discovery-check.js";
export { runCli } from "./cli/program.js";
