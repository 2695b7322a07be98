/**
 * `npm run bench -w @coral-mesh/agent-plugins`
 *
 * CPU time of one steady-state collect of the built-in `passive` collector on this machine's
 * real /proc (after a first collect that fills its caches), as a median over many runs, beside
 * a baseline in the same process: just reading every /proc/PID/stat once. The ratio is what
 * the collector costs over the least any /proc poller must do.
 *
 * Options: --runs N (200).
 */
import { closeSync, openSync, readdirSync, readSync } from "node:fs";
import { parseArgs } from "node:util";
import passive from "../src/passive/index.js";
import { createTestContext } from "../src/testing.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "200" } } });
const RUNS = Number(values.runs);

function cpuMicros(fn: () => void): number {
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return used.user + used.system;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const buffer = Buffer.allocUnsafe(4096);
function baseline(): void {
  for (const name of readdirSync("/proc")) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    try {
      const fd = openSync(`/proc/${name}/stat`, "r");
      readSync(fd, buffer, 0, buffer.length, 0);
      closeSync(fd);
    } catch {}
  }
}

const context = createTestContext(passive);
await passive.start?.(context as never);
const collect = () => void passive.collect?.(context as never);
collect();
for (let i = 0; i < 20; i++) {
  collect();
  baseline();
}
const drain = () => {
  context.emit.events.length = 0;
  context.emit.metrics.length = 0;
  context.emit.connections.length = 0;
};
drain();

const passiveRuns: number[] = [];
const baselineRuns: number[] = [];
for (let i = 0; i < RUNS; i++) {
  passiveRuns.push(cpuMicros(collect));
  drain();
  baselineRuns.push(cpuMicros(baseline));
}
await passive.stop?.(context as never);

const processes = readdirSync("/proc").filter((n) => /^\d+$/.test(n)).length;
const p = median(passiveRuns) / 1000;
const b = median(baselineRuns) / 1000;
process.stdout.write(
  [
    `passive collect on this machine's /proc (${processes} processes), median of ${RUNS}:`,
    `  baseline (read every /proc/PID/stat)  ${b.toFixed(2).padStart(7)} ms CPU`,
    `  passive collect                       ${p.toFixed(2).padStart(7)} ms CPU   (${(p / b).toFixed(1)}x baseline)`,
    `  at the default 10 s interval: ${((p / 10_000) * 100).toFixed(3)} % of one core`,
    "",
  ].join("\n"),
);
