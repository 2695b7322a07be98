/**
 * The coordinator side of the benchmark, in a process of its own so that its CPU time and
 * memory are its own: the real agent service (grpc-js) over a real SQLite store, with N
 * agents enrolled at loopback addresses 127.1.x.y, the ingest bus, a rollup pass every
 * `--rollup-every` ms (60 s, as the coordinator runs it) and the health watch every 5 s. It
 * prints its port, then answers lines on stdin: "stats" with its CPU time, RSS, what the
 * store holds, the rollup passes so far, the event loop's delay and GC pauses; "queries" with the time of `/v1/services` and
 * `/v1/topology` (the store's queries alone, and the routes with their JSON) over what the
 * bench stored. With --baseline it serves the same service with handlers that answer at
 * once and store nothing: grpc-js's own cost. With --analysis it runs the findings engine too
 * (its worker thread fed by the bus, as the coordinator runs it), and "stats" adds the CPU time
 * of the main thread and of the engine's threads (read from /proc, from outside the engine) and
 * the findings the run opened.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { meshV1, shutdownGracefully } from "@coral-mesh/sdk-proto/grpc";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { Hono } from "hono";
import { Analysis } from "../src/analysis/host.js";
import { DEPENDENCY_WINDOW_MS, servicesList } from "../src/api/routes/services-list.js";
import { topologyGet } from "../src/api/routes/topology-get.js";
import { MeshWatcher } from "../src/mesh/watcher.js";
import { every } from "../src/periodic.js";
import { startAgentService } from "../src/rpc/agent-service.js";
import { Bus } from "../src/store/bus.js";
import { openStore } from "../src/store/db.js";
import { observer } from "../src/store/observations.js";
import { listServices, topology } from "../src/store/queries.js";
import { Rollups } from "../src/store/rollups.js";
import { agents } from "../src/store/schema.js";
import { meshAddress } from "./hosts.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    baseline: { type: "boolean", default: false },
    analysis: { type: "boolean", default: false },
    "rollup-every": { type: "string", default: "60000" },
  },
});
const count = Number(positionals[0] ?? 1000);
// Ctrl-C reaches the whole process group: the bench stops this process by ending its stdin, and this one cleans up.
process.on("SIGINT", () => {});
const HEARTBEAT_INTERVAL_MS = 10_000;
const QUERY_CALLS = 20;

const dir = mkdtempSync(join(tmpdir(), "coral-bench-"));
const storePath = join(dir, "coral.db");
const db = openStore(storePath);
db.transaction((tx) => {
  for (let i = 0; i < count; i++) {
    tx.insert(agents)
      .values({ name: `agent-${i}`, wireguardKey: `key-${i}`, meshIp: meshAddress(i), enrolledAt: Date.now() })
      .run();
  }
});

const bus = new Bus((line) => process.stderr.write(`${line}\n`));
const announced = { batches: 0, services: 0 };
bus.on("batches.stored", (m) => {
  announced.batches += m.sequences.length;
});
bus.on("service.changed", () => {
  announced.services++;
});
const observe = observer(db, bus);
const log = (line: string) => process.stderr.write(`bench server: ${line}\n`);
const rollups = new Rollups(db);
const passes: Array<{ at: number; ms: number; minutes: number; hours: number }> = [];
const watcher = new MeshWatcher({ db, observe, bus, heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS });
const jobs = values.baseline
  ? []
  : [
      every(
        "rollups",
        Number(values["rollup-every"]),
        async () => {
          const started = performance.now();
          // Its wall time: a pass yields between slices of buckets, so reports are stored meanwhile.
          const folded = await rollups.pass(Date.now());
          passes.push({ at: Date.now(), ms: performance.now() - started, ...folded });
        },
        { log },
      ),
      every("health watch", HEARTBEAT_INTERVAL_MS / 2, () => watcher.pass(Date.now()), { log }),
    ];

// The engine's threads are the ones that appear when its worker starts: the worker's own, and
// its module loader's (tsx). Their CPU time, read from /proc, is the engine's, with no hook in it.
let engineThreads: string[] = [];
let analysis: Analysis | undefined;
if (values.analysis && !values.baseline) {
  const before = new Set(readdirSync("/proc/self/task"));
  analysis = new Analysis({ db, bus, storePath, log });
  await analysis.start();
  engineThreads = readdirSync("/proc/self/task").filter((tid) => !before.has(tid));
}

const service = values.baseline
  ? await startBaseline()
  : await startAgentService({ db, host: "127.0.0.1", port: 0, heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS, bus, observe });
process.stdout.write(`${JSON.stringify({ port: service.port })}\n`);

// How long the event loop was held (every call waits behind whatever holds it), and how much of that was GC.
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const gc = { pauses: 0, ms: 0, maxMs: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.pauses++;
    gc.ms += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
  }
}).observe({ entryTypes: ["gc"] });

/** CPU time of a thread of this process, in ms (clock ticks of 10 ms); 0 once it is gone. */
const threadCpuMs = (tid: string) => {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
};
const findingCounts = db.$client.prepare<[], { kind: string; severity: string; state: string; n: number }>(
  "SELECT kind, severity, state, count(*) AS n FROM findings GROUP BY 1, 2, 3 ORDER BY 4 DESC",
);

const rowCounts = db.$client.prepare(
  `SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM metric_frames) AS frames,
     (SELECT coalesce(sum(samples), 0) FROM metric_frames) AS samples, (SELECT count(*) FROM metric_series) AS series,
     (SELECT count(*) FROM services) AS services, (SELECT count(*) FROM topology_edges) AS edges,
     (SELECT count(*) FROM metric_rollups) AS rollups`,
);

for await (const line of createInterface({ input: process.stdin })) {
  // The window's start: the event loop's delay and GC pauses are counted from here.
  if (line === "mark") {
    loop.reset();
    Object.assign(gc, { pauses: 0, ms: 0, maxMs: 0 });
    process.stdout.write("{}\n");
  } else if (line === "rows") {
    // Apart from "stats": counting the tables holds the event loop, so it is asked after the window, never within.
    process.stdout.write(`${JSON.stringify(rowCounts.get())}\n`);
  } else if (line === "stats") {
    const cpu = process.cpuUsage();
    const status = readFileSync("/proc/self/status", "utf8");
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    process.stdout.write(
      `${JSON.stringify({
        cpuMs: (cpu.user + cpu.system) / 1000,
        rssMb: kb("VmRSS") / 1024,
        peakRssMb: kb("VmHWM") / 1024,
        passes,
        announced,
        // Since the previous "stats": the bench asks before and after its window.
        loop: { p99Ms: loop.percentile(99) / 1e6, maxMs: loop.max / 1e6 },
        gc: { ...gc },
        threads: {
          mainMs: threadCpuMs(String(process.pid)),
          engineMs: engineThreads.reduce((ms, tid) => ms + threadCpuMs(tid), 0),
          engine: engineThreads.length,
        },
        findings: analysis ? findingCounts.all() : [],
      })}\n`,
    );
  } else if (line === "queries") process.stdout.write(`${JSON.stringify(await queries())}\n`);
  else if (line === "live") process.stdout.write(`${JSON.stringify(await liveQueries())}\n`);
}
await analysis?.stop();
await Promise.all(jobs.map((job) => job.stop()));
await service.close();
db.$client.close();
// CORAL_BENCH_KEEP=1 keeps the store, to profile queries over it afterwards.
if (process.env.CORAL_BENCH_KEEP) log(`the store is kept at ${storePath}`);
else rmSync(dir, { recursive: true, force: true });

/** One call of each route while the load runs: what a person running `coral services` then waits. */
async function liveQueries() {
  const app = new Hono();
  servicesList(app, db, Date.now);
  topologyGet(app, db, Date.now);
  const once = async (path: string) => {
    const started = performance.now();
    const response = await app.request(path);
    await response.text();
    return performance.now() - started;
  };
  return { services: await once("/v1/services"), topology: await once("/v1/topology") };
}

/** Each query QUERY_CALLS times, one after another, on the store as the load left it. */
async function queries() {
  const app = new Hono();
  servicesList(app, db, Date.now);
  topologyGet(app, db, Date.now);
  const timed = async (run: () => unknown) => {
    const ms: number[] = [];
    let result: unknown;
    for (let call = 0; call < QUERY_CALLS; call++) {
      const started = performance.now();
      result = await run();
      ms.push(performance.now() - started);
    }
    return { ms, result };
  };
  const body = async (path: string) => {
    const response = await app.request(path);
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return (await response.text()).length;
  };
  const services = await timed(() => listServices(db, Date.now() - DEPENDENCY_WINDOW_MS, Date.now()));
  const graph = await timed(() => topology(db, { since: Date.now() - 3_600_000, until: Date.now() }));
  const servicesRoute = await timed(() => body("/v1/services"));
  const topologyRoute = await timed(() => body("/v1/topology"));
  const list = services.result as ReturnType<typeof listServices>;
  const g = graph.result as ReturnType<typeof topology>;
  return {
    services: { ms: services.ms, names: list.length, instances: list.reduce((n, s) => n + s.instanceCount, 0) },
    topology: { ms: graph.ms, nodes: g.nodes.length, edges: g.edges.length },
    servicesRoute: { ms: servicesRoute.ms, bytes: servicesRoute.result },
    topologyRoute: { ms: topologyRoute.ms, bytes: topologyRoute.result },
  };
}

async function startBaseline(): Promise<{ port: number; close(): Promise<void> }> {
  const server = new Server();
  server.addService(meshV1.AgentServiceService, {
    register: (_call, callback) =>
      callback(null, { serverTimeUnixMs: Date.now(), heartbeatIntervalMs: 10_000, lastAckedSequence: 0, relayTicket: "" }),
    heartbeat: (_call, callback) => callback(null, { serverTimeUnixMs: Date.now(), relayTicket: "" }),
    report: (call, callback) => callback(null, { ackedSequences: call.request.batches.map((b) => b.sequence) }),
    reportStream: (call) => {
      call.on("data", (request: meshV1.ReportStreamRequest) => call.write({ ackedSequences: request.batches.map((b) => b.sequence) }));
      call.on("end", () => call.end());
    },
  } satisfies meshV1.AgentServiceServer);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { port, close: () => shutdownGracefully(server) };
}
