import { runCli } from "./cli/program.js";

const code = await runCli(process.argv.slice(2));
// Exit now rather than when the event loop drains: after `coral coordinator start` stops, a
// TCP connection whose agent vanished mid-call (its tunnel went down) could hold the process
// for minutes. stdout and stderr are synchronous on Linux files, pipes and terminals.
process.exit(code);
