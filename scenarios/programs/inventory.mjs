// An inventory service that recomputes stock levels in worker threads. SIGUSR2 starts a
// reindex that never finishes (a loop whose exit condition is never met), on `threads` threads.
import { createServer } from "node:http";
import { Worker } from "node:worker_threads";

const RELEASE = /* release */ {};
const { port = 8080, threads = 2 } = RELEASE;
createServer((_req, res) => res.writeHead(200).end("ok\n")).listen(port, "0.0.0.0");

const reindex = `
  let level = 0;
  for (let i = 0; ; i = (i + 1) % 1e9) level = (level * 31 + i) % 1000003;
`;
process.on("SIGUSR2", () => {
  for (let i = 0; i < threads; i++) new Worker(reindex, { eval: true });
  console.error(`reindex started on ${threads} threads`);
});
