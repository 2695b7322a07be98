// A nightly-style rollup batch, run by a scheduler: aggregates on `threads` threads at full
// speed for `seconds`, then exits 0. Heavy on CPU by design, and on schedule.
import { Worker } from "node:worker_threads";

const threads = Number(process.argv[2] ?? 2);
const seconds = Number(process.argv[3] ?? 20);
const code = `
  const { parentPort, workerData } = require("node:worker_threads");
  const end = Date.now() + workerData * 1000;
  let sum = 0;
  while (Date.now() < end) for (let i = 0; i < 1e6; i++) sum = (sum + i * i) % 1000003;
  parentPort.postMessage(sum);
`;
let done = 0;
for (let i = 0; i < threads; i++) {
  new Worker(code, { eval: true, workerData: seconds }).once("message", () => {
    if (++done === threads) console.log("rollup done");
  });
}
