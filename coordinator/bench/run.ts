/**
 * `npm run bench -w @coral-mesh/coordinator`
 *
 * 1. RPC: 1,000 simulated agents, each on its own HTTP/2 connection from its own loopback
 *    address (as each agent calls from its own mesh address), against the real agent service
 *    in a separate process (bench/server.ts: the store, the ingest bus, rollups, the health
 *    watch). Each agent is a host with 40 services (bench/hosts.ts) and reports a batch every
 *    interval (127 samples, a few connections to other hosts' services, now and then a
 *    restart); its first batch observes its services and their listening sockets. As the real
 *    agent sends a heartbeat only after a silence, a tenth of the agents each interval
 *    heartbeat instead of reporting (a different tenth each time), and that collect's batch
 *    goes with their next report. Prints p50/p99 latency per RPC, the coordinator's CPU (% of
 *    one core) and RSS, its rollup passes, and the time of /v1/services and /v1/topology over
 *    what the run stored, after the window with the load still running and once it stopped.
 *    A baseline run first: grpc-js with handlers that store nothing.
 *    Targets: heartbeat p99 < 20 ms at < 35 % of one core; both queries < 100 ms (median).
 * 2. Engine: the findings engine beside ingest. The same load twice, the engine off, then on
 *    (server.ts --analysis: its worker thread fed by the bus), a CPU reading every interval;
 *    the medians of the coordinator's CPU, of its main thread and of the engine's threads, its
 *    RSS, and the findings the healthy fleet opened (it should open none). Then, in-process
 *    (bench/engine.ts), an Engine filled as after hours of this load (full buffers) and a full
 *    re-evaluation timed, detector by detector. Target: the engine adds < 10 % of one core.
 * 3. Storage (bench/storage.ts): one simulated hour of --storage-agents hosts through the real
 *    ingest, as fast as it runs, beside the same samples a row each; bytes per raw sample
 *    (target < 10), per rollup series-minute and series-hour, and the steady-state size of
 *    --agents hosts with the default retentions.
 * 4. Adding 1,000 peers to a wireguard-go interface (in a network namespace of its own;
 *    needs root): one batched request on its socket against one request per peer. Target: < 2 s.
 * 5. Findings (bench/findings.ts): `coral findings`, `/v1/status` and `/v1/summary` over 10,000
 *    findings rows, through the API on loopback. Target: `coral findings` < 100 ms (median).
 * 6. Ask (bench/ask.ts): `coral ask` against a fake Anthropic that answers at once: the time to
 *    its first streamed token, tokens per question, and their cost at list price per question
 *    and per day of 20. Targets: < 300 ms; < $0.02 a question; < $1 a day.
 *
 * Options: --agents N (1000), --seconds S measured (120: two rollup passes), --interval-ms MS (10000),
 * --rollup-every MS (60000: the server's rollup pass; shorter to see passes in a short run),
 * --storage-agents N (100), --only rpc,engine,evaluation,storage,wireguard,findings,ask (all; engine includes evaluation).
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { dirname, join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { WireGuardInterface } from "@coral-mesh/wireguard";
import { COORDINATOR_ADDRESS, MESH_PREFIX_LENGTH } from "@coral-mesh/wireguard/path";
import { missingForLab } from "@coral-mesh/wireguard/testing";
import { askBench } from "./ask.js";
import { engineBench } from "./engine.js";
import { findingsBench } from "./findings.js";
import { meshAddress, PLUGINS, SAMPLES_PER_BATCH, SERVICES_PER_HOST, SimulatedHost } from "./hosts.js";
import { storageBench } from "./storage.js";

const { values } = parseArgs({
  options: {
    agents: { type: "string", default: "1000" },
    seconds: { type: "string", default: "120" },
    "interval-ms": { type: "string", default: "10000" },
    "rollup-every": { type: "string", default: "60000" },
    "storage-agents": { type: "string", default: "100" },
    only: { type: "string", default: "rpc,engine,storage,wireguard,findings,ask" },
  },
});
const AGENTS = Number(values.agents);
const SECONDS = Number(values.seconds);
const INTERVAL = Number(values["interval-ms"]);
/** After the measured window, the load still running, the bench calls /v1/services and /v1/topology this often, this many times. */
const LIVE_QUERY_EVERY_MS = 2_000;
const LIVE_QUERY_CALLS = 15;
const WARMUP_MS = Math.min(INTERVAL, 10_000);
const MAX_WARMUP_MS = 120_000;
/** Every tenth agent heartbeats in place of a report each interval (see above). */
const HEARTBEAT_EVERY = 10;
const PHASES = new Set(values.only.split(","));
const here = dirname(fileURLToPath(import.meta.url));
/** Ctrl-C: each phase stops, and cleans up what it started. */
const interrupted = new AbortController();
process.once("SIGINT", () => interrupted.abort());

interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

/** One gRPC unary call over an HTTP/2 session: length-prefixed message out, status in the trailers. */
function unary<Req, Res>(session: http2.ClientHttp2Session, method: string, req: Codec<Req>, res: Codec<Res>, message: Req): Promise<Res> {
  const body = req.encode(message).finish();
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": `/coral.mesh.v1.AgentService/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
    });
    const chunks: Buffer[] = [];
    let status = "";
    let detail = "";
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("trailers", (trailers) => {
      status = String(trailers["grpc-status"] ?? "");
      detail = String(trailers["grpc-message"] ?? "");
    });
    stream.on("error", reject);
    stream.on("end", () => {
      if (status !== "0") return reject(new Error(`${method}: grpc-status ${status} ${decodeURIComponent(detail)}`));
      const data = Buffer.concat(chunks);
      resolve(res.decode(data.subarray(5, 5 + data.readUInt32BE(1))));
    });
    stream.end(frame);
  });
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
const medianOf = (ms: number[]) =>
  percentile(
    [...ms].sort((a, b) => a - b),
    50,
  );
const fmt = (n: number, digits = 1) => n.toFixed(digits);

interface Stats {
  cpuMs: number;
  threads: { mainMs: number; engineMs: number; engine: number };
  findings: Array<{ kind: string; severity: string; state: string; n: number }>;
  rssMb: number;
  peakRssMb: number;
  passes: Array<{ at: number; ms: number; minutes: number; hours: number }>;
  announced: { batches: number; services: number };
  loop: { p99Ms: number; maxMs: number };
  gc: { pauses: number; ms: number; maxMs: number };
}

interface Queries {
  services: { ms: number[]; names: number; instances: number };
  topology: { ms: number[]; nodes: number; edges: number };
  servicesRoute: { ms: number[]; bytes: number };
  topologyRoute: { ms: number[]; bytes: number };
}

/** One reading of the server's CPU over a collect interval, in % of one core. */
interface Reading {
  cpuPct: number;
  mainPct: number;
  enginePct: number;
}

interface RpcResult {
  p50: number;
  p99: number;
  cpuPct: number;
  rssMb: number;
  peakRssMb: number;
  readings: Reading[];
  findings: Stats["findings"];
  queries?: Queries;
  live?: { services: number[]; topology: number[] };
}

const table = (rows: string[][]) => {
  for (const row of rows) process.stdout.write(`  ${row.map((c, k) => (k === 0 ? c.padEnd(28) : c.padStart(9))).join(" ")}\n`);
};

interface RpcMode {
  /** grpc-js with handlers that store nothing. */
  baseline?: boolean;
  /** The findings engine runs beside ingest. */
  analysis?: boolean;
  /** The routes people call, timed after the window (the RPC phase). */
  queries?: boolean;
}

async function rpcBench(label: string, mode: RpcMode): Promise<RpcResult> {
  const baseline = mode.baseline ?? false;
  const withQueries = !baseline && (mode.queries ?? true);
  const args = [
    join(here, "server.ts"),
    String(AGENTS),
    "--rollup-every",
    String(values["rollup-every"]),
    ...(baseline ? ["--baseline"] : []),
    ...(mode.analysis ? ["--analysis"] : []),
  ];
  const server = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise((r) => server.once("exit", r));
  const lines = createInterface({ input: server.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await lines.next();
    if (line.done) throw new Error("the bench server exited");
    return JSON.parse(line.value as string);
  };
  const ask = async <T>(command: string) => {
    server.stdin?.write(`${command}\n`);
    return (await next()) as T;
  };
  const timers: NodeJS.Timeout[] = [];
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    const { port } = (await next()) as { port: number };
    process.stdout.write(`${label}\n`);
    for (let i = 0; i < AGENTS; i++)
      sessions.push(
        http2.connect(`http://127.0.0.1:${port}`, {
          createConnection: () => net.connect({ host: "127.0.0.1", port, localAddress: meshAddress(i) }),
        }),
      );
    const latencies = { Heartbeat: [] as number[], Report: [] as number[], Register: [] as number[] };
    let errors = 0;
    let measuring = false;
    let inFlight = 0;
    // A call counts when it starts in the window: one started in the warm-up and answered within
    // the window measures the warm-up's backlog, not the steady state.
    const timed = async <T>(name: keyof typeof latencies, call: () => Promise<T>) => {
      const started = performance.now();
      const counted = measuring;
      inFlight++;
      try {
        await call();
        if (counted) latencies[name].push(performance.now() - started);
      } catch (error) {
        errors++;
        if (errors <= 3) process.stderr.write(`  ${String(error)}\n`);
      } finally {
        inFlight--;
      }
    };

    const hosts = sessions.map((_, i) => new SimulatedHost(i, AGENTS));
    await Promise.all(
      sessions.map((session, i) =>
        timed("Register", () =>
          unary(session, "Register", meshV1.RegisterRequest, meshV1.RegisterResponse, (hosts[i] as SimulatedHost).register(Date.now())),
        ),
      ),
    );

    let reported = { batches: 0, samples: 0 };
    sessions.forEach((session, i) => {
      const host = hosts[i] as SimulatedHost;
      const held: meshV1.Batch[] = [];
      let tick = 0;
      const collect = () => {
        const n = tick++;
        held.push(host.collect(Date.now()));
        if (n > 0 && (i + n) % HEARTBEAT_EVERY === 0) {
          void timed("Heartbeat", () =>
            unary(session, "Heartbeat", meshV1.HeartbeatRequest, meshV1.HeartbeatResponse, {
              sentAtUnixMs: Date.now(),
              plugins: PLUGINS,
              runId: `run-${i}`,
            }),
          );
          return;
        }
        const batches = held.splice(0);
        if (measuring)
          reported = { batches: reported.batches + batches.length, samples: reported.samples + batches.length * SAMPLES_PER_BATCH };
        void timed("Report", () =>
          unary(session, "Report", meshV1.ReportRequest, meshV1.ReportResponse, { batches, sentAtUnixMs: Date.now() }),
        );
      };
      // Spread evenly over the interval, as real agents drift apart.
      timers.push(
        setTimeout(
          () => {
            collect();
            timers.push(setInterval(collect, INTERVAL));
          },
          (i / AGENTS) * INTERVAL,
        ),
      );
    });

    // The warm-up lasts until the first reports (every service new to the store) are answered.
    const warmupStarted = performance.now();
    await sleep(WARMUP_MS, undefined, { signal: interrupted.signal });
    while (inFlight > AGENTS / 100 && performance.now() - warmupStarted < MAX_WARMUP_MS)
      await sleep(100, undefined, { signal: interrupted.signal });
    process.stdout.write(`  warm-up ${fmt((performance.now() - warmupStarted) / 1000)} s (${inFlight} calls in flight at its end)\n`);
    const before = await ask<Stats>("stats");
    await ask("mark");
    // This side's own loop too: a call answered at once but read late is this process's delay, not the server's.
    const clientLoop = monitorEventLoopDelay({ resolution: 10 });
    clientLoop.enable();
    const started = performance.now();
    measuring = true;
    // A reading every collect interval: its median stands against a busy machine's moments.
    const readings: Reading[] = [];
    let previous = { stats: before, at: started };
    while (performance.now() - started < SECONDS * 1000 - 1) {
      await sleep(Math.min(INTERVAL, SECONDS * 1000 - (performance.now() - started)), undefined, { signal: interrupted.signal });
      const stats = await ask<Stats>("stats");
      const at = performance.now();
      const share = (ms: number) => (ms / (at - previous.at)) * 100;
      readings.push({
        cpuPct: share(stats.cpuMs - previous.stats.cpuMs),
        mainPct: share(stats.threads.mainMs - previous.stats.threads.mainMs),
        enginePct: share(stats.threads.engineMs - previous.stats.threads.engineMs),
      });
      previous = { stats, at };
    }
    measuring = false;
    clientLoop.disable();
    const after = previous.stats;
    const wallMs = previous.at - started;
    // Then, the load still running, the routes a person calls: apart from the window above, so that
    // the heartbeats' figures are the load's alone.
    const live = { services: [] as number[], topology: [] as number[] };
    for (let call = 0; withQueries && call < LIVE_QUERY_CALLS; call++) {
      await sleep(LIVE_QUERY_EVERY_MS, undefined, { signal: interrupted.signal });
      const q = await ask<{ services: number; topology: number }>("live");
      live.services.push(q.services);
      live.topology.push(q.topology);
    }
    for (const timer of timers.splice(0)) clearInterval(timer);
    await sleep(1_000); // the calls in flight
    for (const session of sessions.splice(0)) session.close();

    const rows = [["rpc", "calls", "p50 ms", "p99 ms", "max ms"]];
    for (const name of ["Heartbeat", "Report"] as const) {
      const sorted = latencies[name].sort((a, b) => a - b);
      rows.push([
        name,
        String(sorted.length),
        fmt(percentile(sorted, 50), 2),
        fmt(percentile(sorted, 99), 2),
        fmt(sorted.at(-1) ?? Number.NaN, 2),
      ]);
    }
    table(rows);
    const cpuPct = ((after.cpuMs - before.cpuMs) / wallMs) * 100;
    const perSecond = (n: number) => fmt(n / (wallMs / 1000), 0);
    const summary = [
      `  server CPU ${fmt(cpuPct)} % of one core (median of ${readings.length} readings ${fmt(medianOf(readings.map((r) => r.cpuPct)))} %); RSS ${fmt(after.rssMb, 0)} MB (peak ${fmt(after.peakRssMb, 0)} MB)`,
      `  server event loop delay p99 ${fmt(after.loop.p99Ms, 0)} ms, max ${fmt(after.loop.maxMs, 0)} ms; GC ${fmt(after.gc.ms, 0)} ms in ${after.gc.pauses} pauses, longest ${fmt(after.gc.maxMs, 0)} ms; the calling side's loop delay p99 ${fmt(clientLoop.percentile(99) / 1e6, 0)} ms, max ${fmt(clientLoop.max / 1e6, 0)} ms`,
      `  sent ${perSecond(reported.batches)} batches/s, ${perSecond(reported.samples)} samples/s; ${errors} failed calls`,
    ];
    if (!baseline) {
      const r = await ask<{
        events: number;
        frames: number;
        samples: number;
        series: number;
        services: number;
        edges: number;
        rollups: number;
      }>("rows");
      const passes = after.passes.slice(before.passes.length);
      const passMs = passes.map((p) => p.ms).sort((a, b) => a - b);
      summary.push(
        `  stored: ${r.frames} frames (${r.samples} samples), ${r.series} series, ${r.services} services, ${r.edges} edges, ${r.events} events, ${r.rollups} rollup rows`,
        passes.length === 0
          ? `  rollups: no pass within the ${SECONDS} s measured (one every ${Number(values["rollup-every"]) / 1000} s; see --rollup-every)`
          : `  rollups: ${passes.length} pass(es) in the window, ${passes.map((p) => `${fmt(p.ms, 0)} ms (${p.minutes} agent-minutes, ${p.hours} agent-hours)`).join(", ")}; max ${fmt(passMs.at(-1) ?? 0, 0)} ms`,
      );
    }
    process.stdout.write(`${summary.join("\n")}\n`);
    const heartbeats = latencies.Heartbeat.sort((a, b) => a - b);
    const result: RpcResult = {
      p50: percentile(heartbeats, 50),
      p99: percentile(heartbeats, 99),
      cpuPct,
      rssMb: after.rssMb,
      peakRssMb: after.peakRssMb,
      readings,
      findings: after.findings,
    };
    if (withQueries) {
      const q = await ask<Queries>("queries");
      const row = (name: string, ms: number[], size: string) => {
        const sorted = [...ms].sort((a, b) => a - b);
        return [name, String(ms.length), fmt(percentile(sorted, 50), 1), fmt(percentile(sorted, 95), 1), size];
      };
      process.stdout.write(
        `  queries over what this run stored (${q.services.names} services, ${q.services.instances} instances; graph of the last hour: ${q.topology.nodes} nodes, ${q.topology.edges} edges), load stopped:\n`,
      );
      table([
        ["query", "calls", "median ms", "p95 ms", "JSON"],
        row("listServices", q.services.ms, ""),
        row("GET /v1/services", q.servicesRoute.ms, `${fmt(q.servicesRoute.bytes / 1e6, 1)} MB`),
        row("topology", q.topology.ms, ""),
        row("GET /v1/topology", q.topologyRoute.ms, `${fmt(q.topologyRoute.bytes / 1e6, 2)} MB`),
        row("GET /v1/services, under load", live.services, ""),
        row("GET /v1/topology, under load", live.topology, ""),
      ]);
      result.live = live;
      result.queries = q;
    }
    process.stdout.write("\n");
    return result;
  } finally {
    for (const timer of timers) clearInterval(timer);
    for (const session of sessions) session.destroy();
    server.stdin?.end();
    await exited;
  }
}

async function wireguardBench(): Promise<void> {
  const missing = missingForLab();
  if (missing) {
    process.stdout.write(`WireGuard: skipped (${missing})\n`);
    return;
  }
  const ns = `cb${randomBytes(3).toString("hex")}`;
  execFileSync("ip", ["netns", "add", ns]);
  const keys = (n: number) => Array.from({ length: n }, () => randomBytes(32).toString("base64"));
  const peer = (key: string, i: number) => ({
    publicKey: key,
    allowedIps: [`100.${64 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}/32`],
  });
  try {
    process.stdout.write("WireGuard: adding peers to a wireguard-go interface\n");
    const batched: number[] = [];
    for (let run = 0; run < 3; run++) {
      const wg = await WireGuardInterface.up({
        name: `${ns}wg`,
        netns: ns,
        privateKey: randomBytes(32).toString("base64"),
        address: `${COORDINATOR_ADDRESS}/${MESH_PREFIX_LENGTH}`,
        mode: "userspace",
      });
      const peers = keys(1000).map(peer);
      const started = performance.now();
      await wg.setPeers(peers);
      batched.push(performance.now() - started);
      if ((await wg.status()).peers.length !== 1000) throw new Error("not every peer was added");
      await wg.down();
    }
    const wg = await WireGuardInterface.up({
      name: `${ns}wg`,
      netns: ns,
      privateKey: randomBytes(32).toString("base64"),
      address: `${COORDINATOR_ADDRESS}/${MESH_PREFIX_LENGTH}`,
      mode: "userspace",
    });
    const single = keys(100).map(peer);
    const started = performance.now();
    for (const p of single) await wg.setPeer(p);
    const perPeer = (performance.now() - started) / single.length;
    await wg.down();
    const median = batched.sort((a, b) => a - b)[1] ?? Number.NaN;
    process.stdout.write(
      [
        `  1,000 peers in one batched request: ${fmt(median, 0)} ms (median of 3)`,
        `  one request per peer: ${fmt(perPeer, 2)} ms each, so ${fmt((perPeer * 1000) / 1000, 1)} s for 1,000 (${fmt((perPeer * 1000) / median, 0)}x slower)`,
        `  target 1,000 peers < 2 s: ${median < 2_000 ? "met" : "NOT met"}`,
        "",
      ].join("\n"),
    );
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
}

try {
  if (PHASES.has("rpc")) {
    process.stdout.write(
      `RPC: ${AGENTS} agents (hosts of ${SERVICES_PER_HOST} services), a report every ${INTERVAL / 1000} s (a tenth heartbeat instead); ${SECONDS} s measured after a warm-up of at least ${WARMUP_MS / 1000} s (until the first reports are answered)\n`,
    );
    const base = await rpcBench("baseline: grpc-js with handlers that store nothing", { baseline: true });
    const coral = await rpcBench("the coordinator's agent service, storing into SQLite", {});
    const q = coral.queries;
    const timings = q ? [q.servicesRoute.ms, q.topologyRoute.ms, coral.live?.services ?? [], coral.live?.topology ?? []] : [];
    const slowest = timings.length ? Math.max(...timings.map(medianOf)) : Number.NaN;
    process.stdout.write(
      [
        `  vs baseline: heartbeat p99 ${fmt(coral.p99, 2)} ms vs ${fmt(base.p99, 2)} ms; CPU ${fmt(coral.cpuPct)} % vs ${fmt(base.cpuPct)} % (${fmt(coral.cpuPct / base.cpuPct, 2)}x); RSS ${fmt(coral.rssMb, 0)} vs ${fmt(base.rssMb, 0)} MB`,
        `  target heartbeat p99 < 20 ms at < 35 % of one core: ${coral.p99 < 20 && coral.cpuPct < 35 ? "met" : "NOT met"}`,
        `  target /v1/services and /v1/topology < 100 ms (median, load stopped and under load): ${slowest < 100 ? "met" : "NOT met"} (slowest median ${fmt(slowest, 0)} ms)`,
        "",
      ].join("\n"),
    );
  }
  if (PHASES.has("engine")) {
    process.stdout.write(
      `Engine: the RPC load of ${AGENTS} agents, the findings engine off then on; ${SECONDS} s measured each, a CPU reading every ${INTERVAL / 1000} s\n`,
    );
    const off = await rpcBench("engine off: ingest, bus, rollups, health watch", { queries: false });
    const on = await rpcBench("engine on: the same, and the findings engine on its worker thread", { analysis: true, queries: false });
    const cpu = (r: RpcResult, pick: (reading: Reading) => number) => medianOf(r.readings.map(pick));
    const added = cpu(on, (r) => r.cpuPct) - cpu(off, (r) => r.cpuPct);
    const engineThread = cpu(on, (r) => r.enginePct);
    const mainAdded = cpu(on, (r) => r.mainPct) - cpu(off, (r) => r.mainPct);
    const bySeverity = new Map<string, number>();
    for (const f of on.findings) bySeverity.set(f.severity, (bySeverity.get(f.severity) ?? 0) + f.n);
    const opened = on.findings.reduce((n, f) => n + f.n, 0);
    process.stdout.write(
      [
        `  server CPU, % of one core (median of ${off.readings.length} and ${on.readings.length} readings): engine off ${fmt(cpu(off, (r) => r.cpuPct))} %, on ${fmt(cpu(on, (r) => r.cpuPct))} %: the engine adds ${fmt(added)} %`,
        `    its worker thread ${fmt(engineThread)} % (read from /proc); the main thread ${fmt(cpu(off, (r) => r.mainPct))} % off, ${fmt(cpu(on, (r) => r.mainPct))} % on (${mainAdded >= 0 ? "+" : ""}${fmt(mainAdded)} %: the bus's messages copied to the worker, findings written)`,
        `  RSS: engine off ${fmt(off.rssMb, 0)} MB (peak ${fmt(off.peakRssMb, 0)} MB), on ${fmt(on.rssMb, 0)} MB (peak ${fmt(on.peakRssMb, 0)} MB)`,
        `  heartbeat p99: engine off ${fmt(off.p99, 2)} ms, on ${fmt(on.p99, 2)} ms`,
        `  findings the run opened: ${opened}${opened ? ` (${[...bySeverity].map(([s, n]) => `${n} ${s}`).join(", ")}: ${on.findings.map((f) => `${f.n} ${f.kind} ${f.severity} ${f.state}`).join(", ")})` : ""}`,
        `  target the engine adds < 10 % of one core: ${added < 10 && engineThread < 10 ? "met" : "NOT met"} (over the first ${SECONDS} s of its series: see the full re-evaluation below for full ones)`,
        "",
      ].join("\n"),
    );
  }
  // The engine with full buffers, in-process; `--only evaluation` runs it without the RPC load before it.
  if (PHASES.has("engine") || PHASES.has("evaluation")) {
    process.stdout.write(`Engine: a full re-evaluation, in-process, ${AGENTS} hosts × ${SERVICES_PER_HOST} services with full buffers\n\n`);
    const full = await engineBench({ agents: AGENTS, out: (line) => process.stdout.write(`${line}\n`), signal: interrupted.signal });
    // CPU time, not wall time: what the worker's thread would spend, however busy the machine.
    // Judged by the steady state measured above (a tenth of the fleet reporting each second, then a
    // pass over what moved), not by a full pass each second: the engine looks only at what moves.
    const steady = medianOf(full.steadyCpuMs) / 10;
    const fill = (full.fillMs / full.simulatedMs) * 100;
    process.stdout.write(
      [
        `  at steady state ${fmt(steady, 1)} % of one core goes to evaluation and at most ${fmt(fill, 2)} % to state updates (the fill's time over the 2 h of samples it held)`,
        `  target the engine adds < 10 % of one core, at steady state: ${steady + fill < 10 ? "met" : "NOT met"}`,
        "",
      ].join("\n"),
    );
  }
  if (PHASES.has("storage"))
    await storageBench({
      agents: Number(values["storage-agents"]),
      fleet: AGENTS,
      signal: interrupted.signal,
      out: (line) => process.stdout.write(`${line}\n`),
    });
  if (PHASES.has("wireguard")) await wireguardBench();
  if (PHASES.has("findings")) await findingsBench({ out: (line) => process.stdout.write(`${line}\n`) });
  if (PHASES.has("ask")) await askBench({ out: (line) => process.stdout.write(`${line}\n`) });
} catch (error) {
  if (!interrupted.signal.aborted) throw error;
  process.stdout.write("interrupted\n");
  process.exitCode = 130;
}
