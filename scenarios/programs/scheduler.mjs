// A scheduler (cron, a Kubernetes CronJob controller, a systemd timer): starts `job` with its
// `args` every `everyMs`, on a fixed cadence, whether or not the last run finished.
import { spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const RELEASE = /* release */ {};
const { everyMs = 60_000, job, args = [] } = RELEASE;
// The job is installed beside the scheduler.
const jobFile = resolve(dirname(fileURLToPath(import.meta.url)), job);
const run = () => {
  const child = spawn(process.execPath, [jobFile, ...args], { stdio: "inherit" });
  child.on("error", (error) => console.error(`job did not start: ${error.message}`));
};
const first = everyMs - (Date.now() % everyMs);
setTimeout(() => {
  run();
  setInterval(run, everyMs);
}, first);
