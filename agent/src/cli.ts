import { runAgentCli } from "./program.js";

// Exit at once when done: a connection to a coordinator that vanished mid-call could hold the process.
process.exit(await runAgentCli(process.argv.slice(2)));
