/**
 * The coordinator side of the benchmark, in a process of its own so that its CPU time and
 * memory are its own: the real agent service (grpc-js) over a real SQLite store, with N
 * agents enrolled at loopback addresses 127.1.x.y. It prints its port, then answers
 * "stats" on stdin with its CPU time and peak RSS. With --baseline it serves the same
 * service with handlers that answer at once and store nothing: grpc-js's own cost.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { meshV1, shutdownGracefully } from "@coral/sdk-proto/grpc";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { startAgentService } from "../src/rpc/agent-service.js";
import { openStore } from "../src/store/db.js";
import { agents } from "../src/store/schema.js";

export const agentAddress = (i: number) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;

const count = Number(process.argv[2] ?? 1000);
const dir = mkdtempSync(join(tmpdir(), "coral-bench-"));
const db = openStore(join(dir, "coral.db"));
db.transaction((tx) => {
  for (let i = 0; i < count; i++) {
    tx.insert(agents)
      .values({ name: `agent-${i}`, wireguardKey: `key-${i}`, meshIp: agentAddress(i), enrolledAt: Date.now() })
      .run();
  }
});
const service = process.argv.includes("--baseline")
  ? await startBaseline()
  : await startAgentService({ db, host: "127.0.0.1", port: 0, heartbeatIntervalMs: 10_000 });
process.stdout.write(`${JSON.stringify({ port: service.port })}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  if (line === "stats") {
    const cpu = process.cpuUsage();
    const status = readFileSync("/proc/self/status", "utf8");
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    const rows = db.$client
      .prepare("SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM metric_samples) AS samples")
      .get();
    process.stdout.write(
      `${JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000, rssMb: kb("VmRSS") / 1024, peakRssMb: kb("VmHWM") / 1024, rows })}\n`,
    );
  }
}
await service.close();
db.$client.close();
rmSync(dir, { recursive: true, force: true });

async function startBaseline(): Promise<{ port: number; close(): Promise<void> }> {
  const server = new Server();
  server.addService(meshV1.AgentServiceService, {
    register: (_call, callback) => callback(null, { serverTimeUnixMs: Date.now(), heartbeatIntervalMs: 10_000, lastAckedSequence: 0 }),
    heartbeat: (_call, callback) => callback(null, { serverTimeUnixMs: Date.now() }),
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
