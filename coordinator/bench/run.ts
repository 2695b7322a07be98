/**
 * `npm run bench -w coordinator`
 *
 * 1. 1,000 simulated agents, each on its own HTTP/2 connection from its own loopback
 *    address (as each agent calls from its own mesh address), heartbeat every 10 s and send
 *    a report batch every 10 s to the real agent service in a separate process. Prints
 *    p50/p99 latency per RPC and the coordinator's CPU (% of one core) and RSS.
 *    Targets: heartbeat p99 < 20 ms at < 25 % of one core.
 * 2. Adding 1,000 peers to a wireguard-go interface (in a network namespace of its own;
 *    needs root): one batched request on its socket against one request per peer. Target: < 2 s.
 *
 * Options: --agents N (1000), --seconds S (60), --interval-ms MS (10000).
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { meshV1 } from "@coral/sdk-proto/grpc";
import { WireGuardInterface } from "@coral/wireguard";
import { COORDINATOR_ADDRESS, MESH_PREFIX_LENGTH } from "@coral/wireguard/path";
import { missingForLab } from "@coral/wireguard/testing";

const { values } = parseArgs({
  options: {
    agents: { type: "string", default: "1000" },
    seconds: { type: "string", default: "60" },
    "interval-ms": { type: "string", default: "10000" },
  },
});
const AGENTS = Number(values.agents);
const SECONDS = Number(values.seconds);
const INTERVAL = Number(values["interval-ms"]);
const WARMUP_MS = Math.min(INTERVAL, 10_000);
const here = dirname(fileURLToPath(import.meta.url));
const agentAddress = (i: number) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;

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
const fmt = (n: number, digits = 1) => n.toFixed(digits);

function batch(agent: number, sequence: number): meshV1.Batch {
  const now = Date.now();
  const subject = { kind: meshV1.SubjectKind.SUBJECT_KIND_SERVICE, id: `svc-${agent % 7}`, name: `service-${agent % 7}` };
  return {
    sequence,
    createdAtUnixMs: now,
    droppedBefore: 0,
    events: [
      { kind: "process.started", timeUnixMs: now, subject, attributes: { pid: String(sequence) }, evidenceJson: "{}", source: "passive" },
    ],
    metrics: ["cpu", "rss", "load1", "load5", "fds", "threads", "conns", "restarts"].map((name, k) => ({
      name,
      value: k * 1.5,
      timeUnixMs: now,
      subject,
      labels: {},
      source: "passive",
    })),
    connections: [
      {
        protocol: "tcp",
        localAddress: agentAddress(agent),
        localPort: 40_000 + (sequence % 100),
        remoteAddress: "10.0.0.5",
        remotePort: 5432,
        pid: 100,
        processName: "api",
        subject,
        observedAtUnixMs: now,
        source: "passive",
      },
    ],
  };
}

interface RpcResult {
  p50: number;
  p99: number;
  cpuPct: number;
  rssMb: number;
}

async function rpcBench(label: string, baseline: boolean): Promise<RpcResult> {
  const args = [join(here, "server.ts"), String(AGENTS), ...(baseline ? ["--baseline"] : [])];
  const server = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: server.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  const next = async () => JSON.parse((await lines.next()).value as string);
  const { port } = (await next()) as { port: number };
  const stats = async () => {
    server.stdin?.write("stats\n");
    return (await next()) as { cpuMs: number; rssMb: number; peakRssMb: number; rows: { events: number; samples: number } };
  };

  process.stdout.write(`${label}\n`);
  const sessions = Array.from({ length: AGENTS }, (_, i) =>
    http2.connect(`http://127.0.0.1:${port}`, {
      createConnection: () => net.connect({ host: "127.0.0.1", port, localAddress: agentAddress(i) }),
    }),
  );
  const latencies = { Heartbeat: [] as number[], Report: [] as number[], Register: [] as number[] };
  let errors = 0;
  let measuring = false;
  const timed = async <T>(name: keyof typeof latencies, call: () => Promise<T>) => {
    const started = performance.now();
    try {
      await call();
      if (measuring) latencies[name].push(performance.now() - started);
    } catch (error) {
      errors++;
      if (errors <= 3) process.stderr.write(`  ${String(error)}\n`);
    }
  };

  const plugins = [
    { name: "passive", version: "0.1.0", status: 2, lastError: "", sinceUnixMs: 0 },
    { name: "sdk", version: "0.1.0", status: 2, lastError: "", sinceUnixMs: 0 },
  ];
  await Promise.all(
    sessions.map((session, i) =>
      timed("Register", () =>
        unary(session, "Register", meshV1.RegisterRequest, meshV1.RegisterResponse, {
          agentName: `agent-${i}`,
          agentVersion: "0.1.0",
          hostname: `host-${i}`,
          os: "linux",
          arch: "x64",
          plugins,
          runId: `run-${i}`,
          sentAtUnixMs: Date.now(),
          addresses: [],
        }),
      ),
    ),
  );

  const sequences = new Array<number>(AGENTS).fill(0);
  const nextSequence = (agent: number) => {
    sequences[agent] = (sequences[agent] ?? 0) + 1;
    return sequences[agent];
  };
  const timers: NodeJS.Timeout[] = [];
  sessions.forEach((session, i) => {
    // Spread evenly over the interval, as real agents drift apart.
    const offset = (i / AGENTS) * INTERVAL;
    const beat = () =>
      void timed("Heartbeat", () =>
        unary(session, "Heartbeat", meshV1.HeartbeatRequest, meshV1.HeartbeatResponse, { sentAtUnixMs: Date.now(), plugins, runId: "" }),
      );
    const report = () =>
      void timed("Report", () =>
        unary(session, "Report", meshV1.ReportRequest, meshV1.ReportResponse, {
          batches: [batch(i, nextSequence(i))],
          sentAtUnixMs: Date.now(),
        }),
      );
    timers.push(
      setTimeout(() => {
        beat();
        timers.push(setInterval(beat, INTERVAL));
      }, offset),
      setTimeout(
        () => {
          report();
          timers.push(setInterval(report, INTERVAL));
        },
        (offset + INTERVAL / 2) % INTERVAL,
      ),
    );
  });

  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const before = await stats();
  const started = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  measuring = false;
  const after = await stats();
  const wallMs = performance.now() - started;
  for (const timer of timers) clearInterval(timer);
  for (const session of sessions) session.close();
  server.stdin?.end();

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
  for (const row of rows) process.stdout.write(`  ${row.map((c, k) => (k === 0 ? c.padEnd(10) : c.padStart(9))).join(" ")}\n`);
  const cpuPct = ((after.cpuMs - before.cpuMs) / wallMs) * 100;
  process.stdout.write(
    [
      `  server CPU ${fmt(cpuPct)} % of one core; RSS ${fmt(after.rssMb, 0)} MB (peak ${fmt(after.peakRssMb, 0)} MB)`,
      `  stored: ${after.rows.events} events, ${after.rows.samples} metric samples; ${errors} failed calls`,
      "",
    ].join("\n"),
  );
  const heartbeats = latencies.Heartbeat.sort((a, b) => a - b);
  return { p50: percentile(heartbeats, 50), p99: percentile(heartbeats, 99), cpuPct, rssMb: after.rssMb };
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

process.stdout.write(
  `RPC: ${AGENTS} agents, heartbeat and report every ${INTERVAL / 1000} s; ${SECONDS} s measured after ${WARMUP_MS / 1000} s warm-up\n`,
);
const base = await rpcBench("baseline: grpc-js with handlers that store nothing", true);
const coral = await rpcBench("the coordinator's agent service, storing into SQLite", false);
process.stdout.write(
  [
    `  vs baseline: heartbeat p99 ${fmt(coral.p99, 2)} ms vs ${fmt(base.p99, 2)} ms; CPU ${fmt(coral.cpuPct)} % vs ${fmt(base.cpuPct)} % (${fmt(coral.cpuPct / base.cpuPct, 2)}x); RSS ${fmt(coral.rssMb, 0)} vs ${fmt(base.rssMb, 0)} MB`,
    `  target heartbeat p99 < 20 ms at < 25 % of one core: ${coral.p99 < 20 && coral.cpuPct < 25 ? "met" : "NOT met"}`,
    "",
  ].join("\n"),
);
await wireguardBench();
