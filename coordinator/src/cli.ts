import { runCli } from "./cli/program.js";

// A reader that went away (`coral events | head -1`) is no error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
}

const code = await runCli(process.argv.slice(2));
// Wait until what was written has reached the pipe, file or terminal: a write to a full pipe
// is queued, and exiting before it drains cuts the output short (`coral events --json | head`
// once got 64 KiB). A callback on an empty write runs after every write queued before it.
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((done) => stream.write("", () => done()))));
// Then exit rather than wait for the event loop to drain: after `coral coordinator start`
// stops, a TCP connection whose agent vanished mid-call (its tunnel went down) could hold
// the process for minutes.
process.exit(code);
