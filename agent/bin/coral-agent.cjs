#!/usr/bin/env -S node --lite-mode --no-expose-wasm --no-memory-reducer
// The agent runs on every host, mostly idle: on this line Node.js trades speed it does not need
// for memory and CPU it saves (docs/collectors.md, "What they cost"). `--lite-mode` leaves out V8's
// compilers to machine code and what they keep per function (so no WebAssembly either, which
// `--no-expose-wasm` says without a warning); `--no-memory-reducer` stops V8 from running
// three full collections whenever an idle heap has grown a little, which an agent that wakes every
// 10 s would otherwise do about every 40 s. The build writes the code cache under the same flags.
//
// Committed shim so npm can link the `coral-agent` command before the first build. It is
// CommonJS, as is what it loads (dist/boot.cjs, then the bundle and its code cache): a start
// that needs no ES module loader is about 15 ms sooner, of a restart's 0.4 s.
"use strict";
const { join } = require("node:path");

const dist = join(__dirname, "..", "dist");
let program;
try {
  program = require(join(dist, "boot.cjs")).loadBundle(dist);
} catch (error) {
  if (error?.code !== "MODULE_NOT_FOUND" || !String(error.message).includes("boot.cjs")) throw error;
}
if (!program) {
  process.stderr.write("coral-agent: the agent is not built yet; run `npm run build` in the repository first.\n");
  process.exit(1);
}
// Exit at once when done: a connection to a coordinator that vanished mid-call could hold the process.
program
  .runAgentCli(process.argv.slice(2), undefined, { importModule: (specifier) => import(specifier) })
  .then((code) => process.exit(code));
