import { loadBundle } from "./boot.js";

// Built, the program comes from the CommonJS bundle with its code cache (see boot.ts).
const program = loadBundle() ?? (await import("./program.js"));
// Exit at once when done: a connection to a coordinator that vanished mid-call could hold the process.
process.exit(await program.runAgentCli(process.argv.slice(2), undefined, { importModule: (specifier) => import(specifier) }));
