/**
 * `npm run bench -w coral-agent` (root, WireGuard, after `npm run build`)
 *
 * What the agent costs its host: the built agent runs `passive,sdk` at their default
 * intervals, joined to a real coordinator in a network-namespace lab, while Debian's
 * `prometheus-node-exporter` runs beside it and is scraped at the same interval. Both are
 * measured over the same window (after a warm-up): CPU time of all their threads from
 * /proc/PID/task/TID/schedstat (nanoseconds, where /proc/PID/stat counts 10 ms ticks) and
 * peak RSS (VmHWM). Targets for the agent: under 0.1 % of one core, under 60 MB RSS.
 *
 * Options: --seconds S (120), --warmup S (20), --plugins LIST (passive,sdk), --node-flags="..." (extra Node flags for the
 * agent, e.g. --node-flags="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it), --agent-stdout FILE
 * (where the agent's stdout goes, e.g. for --node-flags=--trace-gc).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LabCoordinator, stopChild, waitForLine } from "@coral/coordinator/testing";
import { startLocalDiscovery } from "@coral/discovery-worker/local";
import { createLab, missingForLab } from "@coral/wireguard/testing";
import { agentNodeFlags } from "../src/boot.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "120" },
    warmup: { type: "string", default: "20" },
    "node-flags": { type: "string", default: "" },
    plugins: { type: "string", default: "passive,sdk" },
    "agent-stdout": { type: "string" },
  },
});
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const agentDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");

interface Usage {
  /** CPU time of the process's threads, in ms: run time from /proc/PID/task/TID/schedstat (ns), not 10 ms ticks. */
  cpuMs: number;
  /** Of which the main thread (where JavaScript runs); the rest is V8's and libuv's helper threads. */
  mainMs: number;
  rssMb: number;
  peakRssMb: number;
}

function usage(pid: number): Usage {
  let cpuMs = 0;
  let mainMs = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let ms: number;
    try {
      ms = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]) / 1e6;
    } catch {
      continue; // the thread ended meanwhile
    }
    cpuMs += ms;
    if (Number(tid) === pid) mainMs = ms;
  }
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  return { cpuMs, mainMs, rssMb: kb("VmRSS") / 1024, peakRssMb: kb("VmHWM") / 1024 };
}

const pct = (ms: number, seconds: number) => ((ms / 1000 / seconds) * 100).toFixed(3);

async function main(): Promise<void> {
  const missing = missingForLab();
  if (missing) throw new Error(`the agent benchmark ${missing}`);
  if (!existsSync(join(agentDir, "dist", "cli.js"))) throw new Error("build first: npm run build");
  const exporterBin = ["/usr/bin/prometheus-node-exporter"].find((p) => existsSync(p));

  const dir = mkdtempSync(join(tmpdir(), "coral-agent-bench-"));
  const lab = createLab();
  const children: ChildProcess[] = [];
  process.once("exit", () => {
    for (const child of children) child.kill("SIGKILL");
    lab.destroy();
  });
  const discovery = await startLocalDiscovery({ netns: lab.a, ip: lab.addressA, port: 8787 });
  const coordinator = new LabCoordinator({
    ns: lab.a,
    dataDir: join(dir, "coordinator"),
    interfaceName: `${lab.prefix}hub`,
    endpoint: `${lab.addressA}:51820`,
    discoveryUrl: discovery.url,
  });
  try {
    process.stdout.write("starting discovery, the coordinator and the agent in a lab...\n");
    await coordinator.start();
    const { invite } = await coordinator.json<{ invite: string }>("token", "create");
    // The built agent, as users run it: with the Node.js flags of its command's #! line, and
    // no TypeScript loader in the measured process.
    const agent = spawn(
      "ip",
      [
        "netns",
        "exec",
        lab.b,
        process.execPath,
        ...agentNodeFlags(join(agentDir, "src")),
        ...values["node-flags"].split(" ").filter(Boolean),
        join(agentDir, "dist", "cli.js"),
        "--join",
        invite,
        `--plugins=${values.plugins}`,
        "--data-dir",
        join(dir, "agent"),
        "--interface",
        `${lab.prefix}ag`,
        "--name",
        "bench",
      ],
      { stdio: ["ignore", values["agent-stdout"] ? openSync(values["agent-stdout"], "w") : "ignore", "pipe"] },
    );
    children.push(agent);
    await waitForLine(agent, / running as bench /, "the agent").ready;

    let exporter: ChildProcess | undefined;
    let scrapes = 0;
    let scraper: NodeJS.Timeout | undefined;
    if (exporterBin) {
      exporter = spawn(exporterBin, ["--web.listen-address=127.0.0.1:19100"], { stdio: "ignore" });
      children.push(exporter);
      await new Promise((r) => setTimeout(r, 1_000));
      const scrape = () =>
        void fetch("http://127.0.0.1:19100/metrics")
          .then((r) => r.text())
          .then(() => scrapes++)
          .catch(() => {});
      scrape();
      scraper = setInterval(scrape, 10_000);
    } else {
      process.stdout.write(
        "prometheus-node-exporter is not installed (apt-get install prometheus-node-exporter): measuring the agent alone\n",
      );
    }

    process.stdout.write(`warming up for ${WARMUP} s, then measuring for ${SECONDS} s...\n`);
    await new Promise((r) => setTimeout(r, WARMUP * 1000));
    const wgPid = Number(
      execFileSync("pgrep", ["-f", `wireguard-go -f ${lab.prefix}ag$`])
        .toString()
        .trim()
        .split("\n")[0],
    );
    const pids = { agent: agent.pid as number, wireguard: wgPid, ...(exporter?.pid ? { exporter: exporter.pid } : {}) };
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, usage(pid)]));
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const after = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, usage(pid)]));
    clearInterval(scraper);

    const row = (label: string, key: string) => {
      const a = after[key] as Usage;
      const b = before[key] as Usage;
      return `  ${label.padEnd(34)} ${pct(a.cpuMs - b.cpuMs, SECONDS).padStart(8)} %   ${a.rssMb.toFixed(1).padStart(6)} MB   ${a.peakRssMb.toFixed(1).padStart(6)} MB`;
    };
    const a = after.agent as Usage;
    const b = before.agent as Usage;
    const agentCpu = (a.cpuMs - b.cpuMs) / 1000 / SECONDS;
    const lines = [
      `over ${SECONDS} s (CPU in % of one core):`,
      `  ${"process".padEnd(34)} ${"CPU".padStart(10)}   ${"RSS".padStart(9)}   ${"peak RSS".padStart(9)}`,
      row(`coral-agent (${values.plugins || "no plugins"})`, "agent"),
      `    its main thread ${pct(a.mainMs - b.mainMs, SECONDS).padStart(22)} %   (${((a.mainMs - b.mainMs) / (SECONDS / 10)).toFixed(1)} ms per 10 s)`,
      `    its other threads ${pct(a.cpuMs - a.mainMs - (b.cpuMs - b.mainMs), SECONDS).padStart(20)} %   (the garbage collector's helpers, libuv's pool)`,
      row("  its wireguard-go", "wireguard"),
    ];
    if (exporter) {
      lines.push(row(`prometheus-node-exporter (${scrapes} scrapes)`, "exporter"));
      const exporterCpu = ((after.exporter as Usage).cpuMs - (before.exporter as Usage).cpuMs) / 1000 / SECONDS;
      lines.push(
        `  agent / node-exporter: CPU ${(agentCpu / exporterCpu).toFixed(2)}x, peak RSS ${((after.agent as Usage).peakRssMb / (after.exporter as Usage).peakRssMb).toFixed(2)}x`,
      );
    }
    lines.push(
      `  targets (agent < 0.1 % of one core, < 60 MB RSS): ${agentCpu * 100 < 0.1 ? "CPU met" : "CPU NOT met"}, ${(after.agent as Usage).peakRssMb < 60 ? "RSS met" : "RSS NOT met"}`,
      "",
    );
    process.stdout.write(lines.join("\n"));
    await stopChild(agent);
    await stopChild(exporter);
  } finally {
    await coordinator.stop();
    await discovery.stop();
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
