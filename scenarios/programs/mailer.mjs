// A mail sender with a worker pool: `size` workers, each sending a batch of messages and then
// exiting normally (to bound its memory), replaced at once by the master. Workers retire at a
// modest rate, one every `lifetimeMs / size` on average.
import { fork } from "node:child_process";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const RELEASE = /* release */ {};
const { port = 8080, size = 4, lifetimeMs = 30_000 } = RELEASE;
const workerFile = join(dirname(fileURLToPath(import.meta.url)), "sender.mjs");
createServer((_req, res) => res.writeHead(200).end("ok\n")).listen(port, "0.0.0.0");

const start = (delay) => {
  // Spread the lifetimes so that workers do not all retire together.
  const lifetime = Math.round(lifetimeMs * (0.75 + Math.random() * 0.5));
  setTimeout(() => {
    fork(workerFile, [String(lifetime)]).once("exit", (code) => {
      if (code !== 0) console.error(`worker exited with ${code}`);
      start(0);
    });
  }, delay);
};
for (let i = 0; i < size; i++) start((i * lifetimeMs) / size / 2);
