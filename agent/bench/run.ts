/**
 * `npm run bench -w @coral-mesh/agent` (root, WireGuard, after `npm run build`)
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
 * (where the agent's stdout goes, e.g. for --node-flags=--trace-gc), --baseline DIR (another
 * checkout, built: its agent runs beside this one, in the same lab over the same window, and the
 * ratio between the two is printed; this VM's timings drift by a fifth from hour to hour, so a
 * change is judged by that ratio, not by two runs an hour apart).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LabCoordinator, stopChild, waitForLine } from "@coral-mesh/coordinator/testing";
import { startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import { createLab, type Lab, missingForLab } from "@coral-mesh/wireguard/testing";
import { agentNodeFlags } from "../src/boot.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "120" },
    warmup: { type: "string", default: "20" },
    "node-flags": { type: "string", default: "" },
    plugins: { type: "string", default: "passive,sdk" },
    "agent-stdout": { type: "string" },
    baseline: { type: "string" },
  },
});
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const agentDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const baselineDir = values.baseline ? resolve(values.baseline, "agent") : undefined;

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

/**
 * A third host for the baseline agent, `PREFIXc`, on a link of its own to the coordinator's host
 * (TEST-NET-2), with a route to the lab's TEST-NET-1 addresses through it.
 */
function thirdHost(lab: Lab): string {
  const ns = `${lab.prefix}c`;
  const run = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
  run("netns", "add", ns);
  run("link", "add", `${lab.prefix}vc`, "netns", ns, "type", "veth", "peer", "name", `${lab.prefix}vac`, "netns", lab.a);
  run("-n", lab.a, "address", "add", "198.51.100.1/24", "dev", `${lab.prefix}vac`);
  run("-n", lab.a, "link", "set", `${lab.prefix}vac`, "up");
  run("-n", ns, "link", "set", "lo", "up");
  run("-n", ns, "address", "add", "198.51.100.2/24", "dev", `${lab.prefix}vc`);
  run("-n", ns, "link", "set", `${lab.prefix}vc`, "up");
  run("-n", ns, "route", "add", "192.0.2.0/24", "via", "198.51.100.1");
  return ns;
}

const pct = (ms: number, seconds: number) => ((ms / 1000 / seconds) * 100).toFixed(3);

async function main(): Promise<void> {
  const missing = missingForLab();
  if (missing) throw new Error(`the agent benchmark ${missing}`);
  for (const dir of [agentDir, ...(baselineDir ? [baselineDir] : [])])
    if (!existsSync(join(dir, "dist", "agent.cjs"))) throw new Error(`build first: npm run build (in ${resolve(dir, "..")})`);
  const exporterBin = ["/usr/bin/prometheus-node-exporter"].find((p) => existsSync(p));

  const tmp = mkdtempSync(join(tmpdir(), "coral-agent-bench-"));
  const lab = createLab();
  const children: ChildProcess[] = [];
  process.once("exit", () => {
    for (const child of children) child.kill("SIGKILL");
    lab.destroy();
  });
  const discovery = await startLocalDiscovery({ netns: lab.a, ip: lab.addressA, port: 8787 });
  const coordinator = new LabCoordinator({
    ns: lab.a,
    dataDir: join(tmp, "coordinator"),
    interfaceName: `${lab.prefix}hub`,
    endpoint: `${lab.addressA}:51820`,
    discoveryUrl: discovery.url,
  });
  try {
    process.stdout.write("starting discovery, the coordinator and the agent in a lab...\n");
    await coordinator.start();
    // The built agent, as users run it: its command, with the Node.js flags of its #! line, and
    // no TypeScript loader in the measured process.
    const startAgent = async (dir: string, name: string, ns: string, stdout: string | undefined): Promise<ChildProcess> => {
      const { invite } = await coordinator.json<{ invite: string }>("token", "create");
      const agent = spawn(
        "ip",
        [
          "netns",
          "exec",
          ns,
          process.execPath,
          ...agentNodeFlags(join(dir, "src")),
          ...values["node-flags"].split(" ").filter(Boolean),
          join(dir, "bin", "coral-agent.cjs"),
          "--join",
          invite,
          `--plugins=${values.plugins}`,
          "--data-dir",
          join(tmp, name),
          "--interface",
          `${lab.prefix}${name.slice(0, 2)}`,
          "--name",
          name,
        ],
        { stdio: ["ignore", stdout ? openSync(stdout, "w") : "ignore", "pipe"] },
      );
      children.push(agent);
      await waitForLine(agent, new RegExp(` running as ${name} `), name).ready;
      return agent;
    };
    const agent = await startAgent(agentDir, "agent", lab.b, values["agent-stdout"]);
    // The baseline on a host of its own: two agents in one namespace would fight over the mesh's route.
    const baseline = baselineDir ? await startAgent(baselineDir, "baseline", thirdHost(lab), undefined) : undefined;

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
    const wireguardPid = (name: string) =>
      Number(
        execFileSync("pgrep", ["-f", `wireguard-go -f ${lab.prefix}${name.slice(0, 2)}$`])
          .toString()
          .trim()
          .split("\n")[0],
      );
    const pids: Record<string, number> = {
      agent: agent.pid as number,
      wireguard: wireguardPid("agent"),
      ...(baseline?.pid ? { baseline: baseline.pid } : {}),
      ...(exporter?.pid ? { exporter: exporter.pid } : {}),
    };
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, usage(pid)]));
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const after = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, usage(pid)]));
    clearInterval(scraper);

    const cpuMs = (key: string) => (after[key] as Usage).cpuMs - (before[key] as Usage).cpuMs;
    const mainMs = (key: string) => (after[key] as Usage).mainMs - (before[key] as Usage).mainMs;
    const peak = (key: string) => (after[key] as Usage).peakRssMb;
    const row = (label: string, key: string) =>
      `  ${label.padEnd(34)} ${pct(cpuMs(key), SECONDS).padStart(8)} %   ${(after[key] as Usage).rssMb.toFixed(1).padStart(6)} MB   ${peak(key).toFixed(1).padStart(6)} MB`;
    const threads = (key: string) => [
      `    its main thread ${pct(mainMs(key), SECONDS).padStart(22)} %   (${(mainMs(key) / (SECONDS / 10)).toFixed(1)} ms per 10 s)`,
      `    its other threads ${pct(cpuMs(key) - mainMs(key), SECONDS).padStart(20)} %   (the garbage collector's helpers, libuv's pool)`,
    ];
    const agentCpu = cpuMs("agent") / 1000 / SECONDS;
    const lines = [
      `over ${SECONDS} s (CPU in % of one core):`,
      `  ${"process".padEnd(34)} ${"CPU".padStart(10)}   ${"RSS".padStart(9)}   ${"peak RSS".padStart(9)}`,
      row(`coral-agent (${values.plugins || "no plugins"})`, "agent"),
      ...threads("agent"),
      row("  its wireguard-go", "wireguard"),
    ];
    if (baseline) {
      lines.push(row(`baseline agent (${values.baseline})`, "baseline"), ...threads("baseline"));
      lines.push(
        `  agent / baseline: CPU ${(cpuMs("agent") / cpuMs("baseline")).toFixed(2)}x, peak RSS ${(peak("agent") / peak("baseline")).toFixed(2)}x`,
      );
    }
    if (exporter) {
      lines.push(row(`prometheus-node-exporter (${scrapes} scrapes)`, "exporter"));
      lines.push(
        `  agent / node-exporter: CPU ${(cpuMs("agent") / cpuMs("exporter")).toFixed(2)}x, peak RSS ${(peak("agent") / peak("exporter")).toFixed(2)}x`,
      );
    }
    lines.push(
      `  targets (agent < 0.1 % of one core, < 60 MB RSS): ${agentCpu * 100 < 0.1 ? "CPU met" : "CPU NOT met"}, ${peak("agent") < 60 ? "RSS met" : "RSS NOT met"}`,
      "",
    );
    process.stdout.write(lines.join("\n"));
    await stopChild(baseline);
    await stopChild(agent);
    await stopChild(exporter);
  } finally {
    await coordinator.stop();
    await discovery.stop();
    lab.destroy();
    if (baselineDir) spawnSync("ip", ["netns", "del", `${lab.prefix}c`], { stdio: "ignore" }); // absent if setting it up failed
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
