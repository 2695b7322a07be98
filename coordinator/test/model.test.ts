/**
 * The model over a real SQLite store: batches go in through the same ingest the agent
 * service uses, and come out through the HTTP API the CLI and the dashboard read.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type EventsResponse,
  eventsResponseSchema,
  type MetricsResponse,
  metricsResponseSchema,
  type ServiceResponse,
  type ServicesResponse,
  serviceResponseSchema,
  servicesResponseSchema,
  type TopologyResponse,
  topologyResponseSchema,
} from "@coral-mesh/sdk-proto";
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { afterEach, describe, expect, it } from "vitest";
import { MeshWatcher } from "../src/mesh/watcher.js";
import { pluginChanges } from "../src/rpc/agent-service.js";
import { ClockOffsets } from "../src/rpc/clock.js";
import { prepareIngest } from "../src/rpc/ingest.js";
import { Bus, type BusMessages } from "../src/store/bus.js";
import { openStore, type Store } from "../src/store/db.js";
import { packSamples, unpackSamples } from "../src/store/frames.js";
import { observer } from "../src/store/observations.js";
import { applyRetention, DEFAULT_RETENTION } from "../src/store/retention.js";
import { HOUR_MS, MINUTE_MS, Rollups } from "../src/store/rollups.js";
import { agents, events, metricFrames, metricRollups, services, topologyEdgeHours, topologyEdges } from "../src/store/schema.js";
import { modelApi } from "./fixtures/model-api.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "coral-model-"));
  dirs.push(dir);
  return dir;
};

const SERVICE = meshV1.SubjectKind.SUBJECT_KIND_SERVICE;
const HOST = meshV1.SubjectKind.SUBJECT_KIND_HOST;
/** 2027-01-15T10:00:00Z: a whole hour, so buckets are easy to read. */
const T0 = Date.UTC(2027, 0, 15, 10);

function event(kind: string, id: string, name: string, attributes: Record<string, string>, time: number): meshV1.Event {
  return { kind, timeUnixMs: time, subject: { kind: SERVICE, id, name }, attributes, evidenceJson: "{}", source: "passive" };
}
function metric(name: string, subjectId: string, value: number, time: number, kind = SERVICE): meshV1.MetricSample {
  return { name, value, timeUnixMs: time, subject: { kind, id: subjectId, name: subjectId }, labels: {}, source: "passive" };
}
function connection(from: string, address: string, port: number, localPort: number, time: number): meshV1.Connection {
  return {
    protocol: "tcp",
    localAddress: "10.9.0.1",
    localPort,
    remoteAddress: address,
    remotePort: port,
    pid: 42,
    processName: from,
    subject: { kind: SERVICE, id: from, name: from },
    observedAtUnixMs: time,
    source: "passive",
  };
}
const batch = (sequence: number, parts: Partial<meshV1.Batch>): meshV1.Batch => ({
  sequence,
  createdAtUnixMs: T0,
  droppedBefore: 0,
  events: [],
  metrics: [],
  connections: [],
  ...parts,
});

async function model() {
  const dir = tempDir();
  const db = openStore(join(dir, "data", "coral.db"));
  const bus = new Bus();
  let now = T0;
  const app = await modelApi(db, dir, () => now);
  const ingest = prepareIngest(db, bus);
  const get = async <T>(path: string): Promise<T> => {
    const response = await app.request(path);
    expect(response.status, await response.clone().text()).toBe(200);
    return (await response.json()) as T;
  };
  return {
    db,
    bus,
    app,
    ingest,
    get,
    at: (time: number) => {
      now = time;
    },
  };
}

function addAgent(db: Store, name: string, meshIp: string, addresses: string[]) {
  db.insert(agents)
    .values({ name, wireguardKey: `key-${name}`, meshIp, enrolledAt: T0, addresses })
    .run();
}

/** web-1 runs `api`, which calls postgres on db-1 (by db-1's host address), redis on its own loopback, and an outside API. */
function twoHosts(m: Awaited<ReturnType<typeof model>>) {
  addAgent(m.db, "web-1", "100.64.0.2", ["198.51.100.10"]);
  addAgent(m.db, "db-1", "100.64.0.3", ["198.51.100.20", "2001:db8::20"]);
  m.ingest(
    "db-1",
    [
      batch(1, {
        events: [
          event(
            "service.observed",
            "exe:/usr/lib/postgresql/15/bin/postgres",
            "postgres",
            { source: "passive", listening: "0.0.0.0:5432,:::5432" },
            T0,
          ),
        ],
      }),
    ],
    T0,
  );
  m.ingest(
    "web-1",
    [
      batch(1, {
        events: [
          event("service.observed", "script:node /srv/api.js", "api", { source: "passive", exe: "/usr/bin/node" }, T0),
          event("service.observed", "exe:/usr/bin/redis-server", "redis-server", { source: "passive", listening: "127.0.0.1:6379" }, T0),
        ],
      }),
      batch(2, {
        connections: [
          // Three sockets of one collect to the same place are one edge, seen once.
          connection("script:node /srv/api.js", "198.51.100.20", 5432, 40001, T0 + 10_000),
          connection("script:node /srv/api.js", "198.51.100.20", 5432, 40002, T0 + 10_000),
          connection("script:node /srv/api.js", "::ffff:198.51.100.20", 5432, 40003, T0 + 10_000),
          connection("script:node /srv/api.js", "127.0.0.1", 6379, 40004, T0 + 10_000),
          connection("script:node /srv/api.js", "203.0.113.50", 443, 40005, T0 + 10_000),
          // The agent's own report stream to the coordinator: Coral's traffic, no part of the graph.
          connection("exe:/usr/bin/coral-agent", "100.64.0.1", 51821, 40006, T0 + 10_000),
        ],
      }),
      batch(3, { connections: [connection("script:node /srv/api.js", "198.51.100.20", 5432, 40001, T0 + 20_000)] }),
    ],
    T0 + 20_000,
  );
  // What ingest holds back of edges it knows (written once a minute by the coordinator).
  m.ingest.flush();
}

describe("the dependency graph", () => {
  it("resolves connections to the service listening there: on another agent, on the same host, or external", async () => {
    const m = await model();
    twoHosts(m);
    m.at(T0 + 30_000);
    const graph = topologyResponseSchema.parse(await m.get<TopologyResponse>("/v1/topology"));
    expect(graph.nodes.map((n) => n.id)).toEqual(["external:203.0.113.50:443", "service:api", "service:postgres", "service:redis-server"]);
    expect(graph.nodes.find((n) => n.id === "service:postgres")?.agents).toEqual(["db-1"]);
    const toPostgres = graph.edges.find((e) => e.to === "service:postgres");
    expect(toPostgres).toMatchObject({
      from: "service:api",
      port: 5432,
      protocol: "tcp",
      firstSeen: T0 + 10_000,
      lastSeen: T0 + 20_000,
      observations: 3, // two collects; the IPv4-mapped address is a second agent-level edge of the first
      hours: [{ hour: T0, observations: 3 }],
    });
    expect(toPostgres?.via).toEqual([
      { agent: "web-1", address: "198.51.100.20" },
      { agent: "web-1", address: "::ffff:198.51.100.20" },
    ]);
    expect(graph.edges.find((e) => e.to === "service:redis-server")).toMatchObject({ from: "service:api", port: 6379 });
    expect(graph.edges.find((e) => e.to === "external:203.0.113.50:443")).toMatchObject({ from: "service:api", port: 443 });
    // One row per distinct agent-level edge, not per socket.
    expect(m.db.select().from(topologyEdges).all()).toHaveLength(5);
    expect(graph.edges.some((e) => e.to.includes("100.64.0.1"))).toBe(false);
  });

  it("draws the graph of a past hour from the hourly counts", async () => {
    const m = await model();
    twoHosts(m);
    m.ingest(
      "web-1",
      [batch(4, { connections: [connection("script:node /srv/api.js", "198.51.100.20", 5432, 40001, T0 + 2 * HOUR_MS)] })],
      T0,
    );
    m.at(T0 + 3 * HOUR_MS + MINUTE_MS);
    const lastHour = await m.get<TopologyResponse>("/v1/topology");
    expect(lastHour.edges).toHaveLength(0);
    const secondHour = await m.get<TopologyResponse>(`/v1/topology?since=${T0 + 2 * HOUR_MS}&until=${T0 + 3 * HOUR_MS}`);
    expect(secondHour.edges.map((e) => [e.to, e.observations])).toEqual([["service:postgres", 1]]);
    const all = await m.get<TopologyResponse>(`/v1/topology?since=${T0}&until=${T0 + 3 * HOUR_MS}`);
    expect(all.edges.find((e) => e.to === "service:postgres")?.hours).toEqual([
      { hour: T0, observations: 3 },
      { hour: T0 + 2 * HOUR_MS, observations: 1 },
    ]);
  });

  it("writes a known edge once a minute and when its hour changes, and again after it was aged out", async () => {
    const m = await model();
    addAgent(m.db, "web-1", "100.64.0.2", []);
    const seen = (t: number, sequence: number) =>
      m.ingest("web-1", [batch(sequence, { connections: [connection("script:node /srv/api.js", "203.0.113.7", 443, 40001, t)] })], t);
    const stored = () => m.db.select({ last: topologyEdges.lastSeenAt, n: topologyEdges.observations }).from(topologyEdges).get();
    const hours = () => m.db.select({ hour: topologyEdgeHours.hour, n: topologyEdgeHours.observations }).from(topologyEdgeHours).all();
    const start = T0 + HOUR_MS - 50_000;
    seen(start, 1);
    seen(start + 10_000, 2);
    seen(start + 20_000, 3);
    expect(stored()).toEqual({ last: start, n: 1 }); // the next two are held back
    seen(start + 60_000, 4); // a minute on, and a new hour: the old hour's count is written, then the new one's
    expect(stored()).toEqual({ last: start + 60_000, n: 4 });
    expect(hours()).toEqual([
      { hour: T0, n: 3 },
      { hour: T0 + HOUR_MS, n: 1 },
    ]);
    seen(start + 70_000, 5);
    m.ingest.flush();
    expect(stored()).toEqual({ last: start + 70_000, n: 5 });
    await applyRetention(m.db, { ...DEFAULT_RETENTION, inventoryMs: 1 }, start + 80_000);
    expect(stored()).toBeUndefined();
    seen(start + 200_000, 6);
    expect(stored()).toEqual({ last: start + 200_000, n: 1 });
  });

  it("follows listening sockets as ports open and close", async () => {
    const m = await model();
    twoHosts(m);
    const key = "exe:/usr/lib/postgresql/15/bin/postgres";
    m.ingest("db-1", [batch(2, { events: [event("port.closed", key, "postgres", { address: "0.0.0.0:5432" }, T0 + 1_000)] })], T0);
    m.ingest("db-1", [batch(3, { events: [event("port.closed", key, "postgres", { address: ":::5432" }, T0 + 1_000)] })], T0);
    m.at(T0 + 30_000);
    let graph = await m.get<TopologyResponse>("/v1/topology");
    expect(graph.edges.map((e) => e.to)).toContain("external:198.51.100.20:5432");
    m.ingest("db-1", [batch(4, { events: [event("port.opened", key, "postgres", { address: "198.51.100.20:5432" }, T0 + 2_000)] })], T0);
    graph = await m.get<TopologyResponse>("/v1/topology");
    expect(graph.edges.map((e) => e.to)).toContain("service:postgres");
    expect(m.db.select({ listening: services.listening }).from(services).all()).toContainEqual({ listening: ["198.51.100.20:5432"] });
  });
});

describe("services", () => {
  it("are names across agents, with instances, dependencies and dependents", async () => {
    const m = await model();
    twoHosts(m);
    addAgent(m.db, "web-2", "100.64.0.4", ["198.51.100.11"]);
    m.ingest(
      "web-2",
      [
        batch(1, {
          events: [event("service.observed", "script:node /srv/api.js", "api", { source: "passive" }, T0)],
        }),
        batch(2, {
          events: [
            event("service.observed", "script:node /srv/api.js", "example-api", { source: "sdk", version: "2.4.1" }, T0 + 1),
            event("service.health_changed", "script:node /srv/api.js", "example-api", { from: "unknown", to: "not_serving" }, T0 + 2),
          ],
        }),
      ],
      T0,
    );
    m.at(T0 + 30_000);
    const { services: list } = servicesResponseSchema.parse(await m.get<ServicesResponse>("/v1/services"));
    expect(list.map((s) => s.name)).toEqual(["api", "example-api", "postgres", "redis-server"]);
    const api = list.find((s) => s.name === "api");
    // The list summarises; the instances come on request.
    expect(api).toMatchObject({ instanceCount: 1, agents: ["web-1"], ports: [] });
    expect(api?.instances).toBeUndefined();
    expect(api?.dependencies.map((d) => `${d.kind}:${d.name}:${d.port}`)).toEqual([
      "external:203.0.113.50:443:443",
      "service:postgres:5432",
      "service:redis-server:6379",
    ]);
    const postgres = list.find((s) => s.name === "postgres");
    expect(postgres?.dependents.map((d) => d.name)).toEqual(["api"]);
    expect(postgres?.ports).toEqual([5432]);
    const { service } = serviceResponseSchema.parse(await m.get<ServiceResponse>("/v1/services/postgres"));
    expect(service).toMatchObject({ name: "postgres", instanceCount: 1, dependents: [{ name: "api" }] });
    expect(service.instances.map((i) => [i.agent, i.listening])).toEqual([["db-1", ["0.0.0.0:5432", ":::5432"]]]);
    // The SDK's word (name, version, health) wins over the passive guess for the same process.
    const full = servicesResponseSchema.parse(await m.get<ServicesResponse>("/v1/services?instances=true")).services;
    expect(full.find((s) => s.name === "example-api")).toMatchObject({
      source: "sdk",
      versions: ["2.4.1"],
      health: "not_serving",
      instances: [{ agent: "web-2", source: "sdk", health: "not_serving" }],
    });
    expect(full.map((s) => s.instances?.length)).toEqual([1, 1, 1, 1]);
  });

  it("say when the last process of one has exited, and when one runs again, on the bus too", async () => {
    const m = await model();
    twoHosts(m);
    const changes: BusMessages["service.changed"][] = [];
    m.bus.on("service.changed", (c) => changes.push(c));
    const key = "exe:/usr/lib/postgresql/15/bin/postgres";
    const processEvent = (kind: string, attributes: Record<string, string>, time: number): meshV1.Event => ({
      kind,
      timeUnixMs: time,
      subject: { kind: meshV1.SubjectKind.SUBJECT_KIND_PROCESS, id: `pid:${attributes.pid}`, name: "postgres" },
      attributes: { service: "postgres", serviceKey: key, ...attributes },
      evidenceJson: "{}",
      source: "passive",
    });
    const postgres = async () => (await m.get<ServicesResponse>("/v1/services?instances=true")).services.find((s) => s.name === "postgres");
    expect(await postgres()).toMatchObject({ instanceCount: 1, runningCount: 1, instances: [{ stoppedAt: null }] });

    // One of two processes exits: it still runs.
    m.ingest("db-1", [batch(2, { events: [processEvent("process.exited", { pid: "7", remaining: "1" }, T0 + 1_000)] })], T0 + 1_000);
    expect(await postgres()).toMatchObject({ runningCount: 1 });
    expect(changes).toEqual([]);

    // The last one is killed.
    m.ingest("db-1", [batch(3, { events: [processEvent("process.exited", { pid: "8", remaining: "0" }, T0 + 2_000)] })], T0 + 2_000);
    expect(await postgres()).toMatchObject({ instanceCount: 1, runningCount: 0, instances: [{ stoppedAt: T0 + 2_000 }] });
    expect(changes).toEqual([{ agent: "db-1", key, name: "postgres", change: "running" }]);

    // A start reported late, from before the exit, does not bring it back; one after it does.
    m.ingest("db-1", [batch(4, { events: [processEvent("process.started", { pid: "6" }, T0 + 500)] })], T0 + 3_000);
    expect(await postgres()).toMatchObject({ runningCount: 0 });
    m.ingest("db-1", [batch(5, { events: [processEvent("process.started", { pid: "9" }, T0 + 4_000)] })], T0 + 4_000);
    expect(await postgres()).toMatchObject({ runningCount: 1, instances: [{ stoppedAt: null }] });
    expect(changes.map((c) => c.change)).toEqual(["running", "running"]);
  });

  it("answer an unknown service and a bad query with their codes", async () => {
    const m = await model();
    twoHosts(m);
    const missing = await m.app.request("/v1/services/nope");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "service_not_found" });
    const bad = await m.app.request("/v1/services?instances=maybe");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "invalid_query" });
  });

  it("resolve again when a service starts listening where a connection went (what is cached follows the store)", async () => {
    const m = await model();
    twoHosts(m);
    addAgent(m.db, "edge-1", "100.64.0.9", ["203.0.113.50"]);
    m.at(T0 + 30_000);
    const before = await m.get<ServicesResponse>("/v1/services");
    expect(before.services.find((s) => s.name === "api")?.dependencies.map((d) => `${d.kind}:${d.name}`)).toContain(
      "external:203.0.113.50:443",
    );
    // The agent at 203.0.113.50 starts a service listening on 443: the same edge now leads to it.
    m.ingest(
      "edge-1",
      [
        batch(1, {
          events: [event("service.observed", "exe:/usr/sbin/nginx", "nginx", { source: "passive", listening: "0.0.0.0:443" }, T0 + 31_000)],
        }),
      ],
      T0 + 31_000,
    );
    const after = await m.get<ServicesResponse>("/v1/services");
    expect(after.services.find((s) => s.name === "api")?.dependencies.map((d) => `${d.kind}:${d.name}`)).toContain("service:nginx");
    expect(after.services.find((s) => s.name === "nginx")?.dependents.map((d) => d.name)).toEqual(["api"]);
  });

  it("stay while their metrics keep coming, however long ago they were first observed", async () => {
    const m = await model();
    twoHosts(m);
    const key = "script:node /srv/api.js";
    const week = DEFAULT_RETENTION.inventoryMs;
    m.ingest("web-1", [batch(10, { metrics: [metric("service.processes", key, 1, T0 + 60_000)] })], T0);
    m.ingest("web-1", [batch(11, { metrics: [metric("service.processes", key, 1, T0 + week)] })], T0 + week);
    await applyRetention(m.db, DEFAULT_RETENTION, T0 + week + HOUR_MS);
    expect(m.db.select({ name: services.name, lastSeen: services.lastSeenAt }).from(services).all()).toEqual([
      { name: "api", lastSeen: T0 + week },
    ]);
  });

  it("vanish after the inventory's retention, edges and their hours with them", async () => {
    const m = await model();
    twoHosts(m);
    const later = T0 + DEFAULT_RETENTION.inventoryMs + 60_000;
    m.at(later);
    expect((await m.get<ServicesResponse>("/v1/services")).services).toHaveLength(3);
    const removed = await applyRetention(m.db, DEFAULT_RETENTION, later);
    expect(removed).toMatchObject({ services: 3, edges: 5 });
    expect(m.db.select().from(topologyEdgeHours).all()).toEqual([]);
    // What the API had read of them is forgotten too.
    expect((await m.get<ServicesResponse>("/v1/services")).services).toEqual([]);
    expect((await m.get<TopologyResponse>(`/v1/topology?since=${T0}`)).edges).toEqual([]);
  });
});

describe("metrics", () => {
  /** Ten minutes of api's CPU and memory on web-1, every 10 s: CPU 0.01 × the minute, memory growing 1 MB a minute. */
  function tenMinutes(m: Awaited<ReturnType<typeof model>>, from = 0, to = 60) {
    for (let i = from; i < to; i++) {
      const t = T0 + i * 10_000;
      const minute = Math.floor(i / 6);
      m.ingest(
        "web-1",
        [
          batch(100 + i, {
            metrics: [
              metric("service.cpu.cores", "script:node /srv/api.js", 0.01 * (minute + 1), t),
              metric("service.memory.rss_bytes", "script:node /srv/api.js", 50_000_000 + minute * 1_000_000, t),
              metric("host.load1", "host", 0.5, t, HOST),
            ],
          }),
        ],
        t,
      );
    }
  }

  it("keep raw samples, and fold them into minutes and hours once those are over", async () => {
    const m = await model();
    twoHosts(m);
    tenMinutes(m);
    const rollups = new Rollups(m.db);
    expect(await rollups.pass(T0 + 10 * MINUTE_MS + 30_000)).toEqual({ minutes: 10, hours: 0 });
    m.at(T0 + 10 * MINUTE_MS);

    const raw = metricsResponseSchema.parse(await m.get<MetricsResponse>("/v1/services/api/metrics?metric=service.cpu.cores"));
    expect(raw.resolution).toBe("raw");
    expect(raw.metrics).toEqual(["service.cpu.cores", "service.memory.rss_bytes"]);
    expect(raw.series).toHaveLength(1);
    expect(raw.series[0]).toMatchObject({ agent: "web-1", metric: "service.cpu.cores", source: "passive" });
    expect(raw.series[0]?.points).toHaveLength(60);
    expect(raw.series[0]?.points[0]).toEqual({ t: T0, avg: 0.01, min: 0.01, max: 0.01, count: 1 });

    const minutes = await m.get<MetricsResponse>(`/v1/services/api/metrics?metric=service.memory.rss_bytes&since=${T0}&resolution=1m`);
    expect(minutes.series[0]?.points.map((p) => [p.t - T0, p.avg, p.count])).toEqual(
      Array.from({ length: 10 }, (_, i) => [i * MINUTE_MS, 50_000_000 + i * 1_000_000, 6]),
    );

    // The hour is over: its rollup folds the minutes.
    expect(await rollups.pass(T0 + HOUR_MS + 30_000)).toEqual({ minutes: 0, hours: 1 });
    m.at(T0 + HOUR_MS);
    const hours = await m.get<MetricsResponse>(`/v1/services/api/metrics?metric=service.cpu.cores&since=${T0}&resolution=1h`);
    expect(hours.series[0]?.points).toEqual([{ t: T0, avg: 0.055, min: 0.01, max: 0.1, count: 60 }]);
  });

  it("folds late samples into minutes already folded, and loses no open minute across a restart", async () => {
    const m = await model();
    twoHosts(m);
    tenMinutes(m, 0, 30); // minutes 0-4
    // The pass runs inside minute 4's grace: minutes 0-3 are folded, minute 4 is held back.
    expect(await new Rollups(m.db).pass(T0 + 5 * MINUTE_MS + 10_000)).toEqual({ minutes: 4, hours: 0 });
    // A restarted coordinator (a new Rollups) gets minute 4 when it is over; an agent cut off delivers minute 2 late.
    m.ingest(
      "web-1",
      [batch(999, { metrics: [metric("service.cpu.cores", "script:node /srv/api.js", 1, T0 + 2 * MINUTE_MS + 5_000)] })],
      T0 + 9 * MINUTE_MS,
    );
    expect(await new Rollups(m.db).pass(T0 + 10 * MINUTE_MS)).toEqual({ minutes: 2, hours: 0 });
    const buckets = m.db
      .select({ bucketStart: metricRollups.bucketStart })
      .from(metricRollups)
      .all()
      .map((r) => (r.bucketStart - T0) / MINUTE_MS);
    expect(buckets).toEqual([0, 1, 2, 3, 4]);
    m.at(T0 + 10 * MINUTE_MS);
    const minutes = await m.get<MetricsResponse>(`/v1/services/api/metrics?metric=service.cpu.cores&since=${T0}&resolution=1m`);
    expect(minutes.series[0]?.points.map((p) => [(p.t - T0) / MINUTE_MS, p.count, p.max])).toEqual([
      [0, 6, 0.01],
      [1, 6, 0.02],
      [2, 7, 1],
      [3, 6, 0.04],
      [4, 6, 0.05],
    ]);
  });

  it("are folded a few hundred buckets at a time, answering others in between", async () => {
    const m = await model();
    const insert = m.db.$client.prepare(
      "INSERT INTO metric_frames (agent_name, start_time, end_time, samples, data) VALUES (?, ?, ?, 1, ?)",
    );
    for (let a = 0; a < 450; a++) insert.run(`host-${a}`, T0, T0, packSamples([{ seriesId: 1, time: T0, value: a }], T0));
    let pauses = 0;
    const folded = await new Rollups(m.db).pass(T0 + 2 * MINUTE_MS, async () => {
      pauses++;
    });
    expect(folded.minutes).toBe(450);
    expect(pauses).toBe(2);
    expect(m.db.select().from(metricRollups).all()).toHaveLength(450);
  });

  it("cost a few bytes a sample", () => {
    // A realistic batch of a host with 40 services: per service CPU, memory, processes; host figures.
    const samples = Array.from({ length: 40 }, (_, s) => [
      { seriesId: 3 * s + 1, time: T0, value: Math.round(Math.random() * 500) / 10_000 },
      { seriesId: 3 * s + 2, time: T0, value: 4096 * Math.round(10_000 + Math.random() * 50_000) },
      { seriesId: 3 * s + 3, time: T0, value: 1 + Math.floor(Math.random() * 4) },
    ]).flat();
    const packed = packSamples(samples, T0);
    expect(packed.length / samples.length).toBeLessThan(10);
    const back: number[] = [];
    unpackSamples(packed, T0, (_id, _t, v) => back.push(v));
    expect(back).toEqual(samples.map((s) => s.value));
  });

  it("pack any finite value exactly", () => {
    const values = [0, 1, -1, 0.5, -0.25, 0.0123, 123.45, 1e13, -987654321012, 2 ** 53 - 1, Math.PI, 1e-9, -1e300, 0.1 + 0.2];
    const packed = packSamples(
      values.map((value, i) => ({ seriesId: i * 1000, time: T0 + i * 7 - 20, value })),
      T0,
    );
    const back: Array<[number, number, number]> = [];
    unpackSamples(packed, T0, (id, t, v) => back.push([id, t, v]));
    expect(back).toEqual(values.map((value, i) => [i * 1000, T0 + i * 7 - 20, value]));
  });

  it("answer a clear error for a service no agent has", async () => {
    const m = await model();
    const response = await m.app.request("/v1/services/nope/metrics");
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ code: "service_not_found" });
    const bad = await m.app.request("/v1/services/nope/metrics?resolution=5m");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "invalid_query" });
  });

  it("are dropped a few thousand rows at a time, answering others in between", async () => {
    const m = await model();
    const old = T0 - 2 * DEFAULT_RETENTION.rawMs;
    const insert = m.db.$client.prepare(
      "INSERT INTO metric_frames (agent_name, start_time, end_time, samples, data) VALUES ('a', ?, ?, 1, x'00')",
    );
    m.db.$client.transaction(() => {
      for (let i = 0; i < 12_000; i++) insert.run(old + i, old + i);
      insert.run(T0, T0);
    })();
    let pauses = 0;
    const removed = await applyRetention(m.db, DEFAULT_RETENTION, T0, async () => {
      pauses++;
    });
    expect(removed.frames).toBe(12_000);
    expect(pauses).toBe(2);
    expect(
      m.db
        .select()
        .from(metricFrames)
        .all()
        .map((f) => f.startTime),
    ).toEqual([T0]);
  });

  it("drop raw samples after a day and keep rollups", async () => {
    const m = await model();
    twoHosts(m);
    tenMinutes(m);
    await new Rollups(m.db).pass(T0 + HOUR_MS + 60_000);
    const removed = await applyRetention(m.db, DEFAULT_RETENTION, T0 + DEFAULT_RETENTION.rawMs + HOUR_MS);
    expect(removed).toMatchObject({ frames: 60, minutes: 0, hours: 0 });
    m.at(T0 + DEFAULT_RETENTION.rawMs);
    const hours = await m.get<MetricsResponse>(`/v1/services/api/metrics?metric=service.cpu.cores&since=${T0}&resolution=1h`);
    expect(hours.series[0]?.points.map((p) => p.count)).toEqual([60]);
  });
});

describe("events", () => {
  it("page through any number, newest stored first, each once", async () => {
    const m = await model();
    addAgent(m.db, "web-1", "100.64.0.2", []);
    m.db.update(agents).set({ clockOffsetMs: 1_500 }).run();
    for (let b = 0; b < 25; b++) {
      m.ingest(
        "web-1",
        [
          batch(b + 1, {
            events: Array.from({ length: 100 }, (_, i) => event("port.opened", "x", "x", { n: String(b * 100 + i) }, T0 + b)),
          }),
        ],
        T0 + 60_000,
      );
    }
    const seen: number[] = [];
    let before: number | null | undefined;
    let pages = 0;
    do {
      const page = eventsResponseSchema.parse(await m.get<EventsResponse>(`/v1/events?limit=1000${before ? `&before=${before}` : ""}`));
      seen.push(...page.events.map((e) => Number(e.attributes.n)));
      before = page.next;
      pages++;
      expect(page.events[0]).toMatchObject({ agent: "web-1", source: "passive", receivedAt: T0 + 60_000 });
      // The agent's clock is 1.5 s ahead: corrected, its events are 1.5 s earlier.
      expect(page.events[0]?.coordinatorTime).toBe((page.events[0]?.time ?? 0) - 1_500);
    } while (before);
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 2500 }, (_, i) => 2499 - i));
  });

  it("refuse a cursor that is not an event id", async () => {
    const m = await model();
    const response = await m.app.request("/v1/events?before=abc");
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: "invalid_query", message: expect.stringContaining("before") });
  });

  it("include what the coordinator observed: health going and coming back, discovery failing", async () => {
    const m = await model();
    addAgent(m.db, "web-1", "100.64.0.2", []);
    const seen: Array<BusMessages["health.changed"]> = [];
    m.bus.on("health.changed", (h) => seen.push(h));
    let discovery: "registered" | "failing" = "registered";
    const watcher = new MeshWatcher({
      db: m.db,
      observe: observer(m.db, m.bus),
      bus: m.bus,
      heartbeatIntervalMs: 10_000,
      discoveryState: () => ({
        state: discovery,
        lastRegistered: T0,
        lastError: discovery === "failing" ? "timeout" : null,
        observedAddress: null,
      }),
    });
    watcher.pass(T0); // never heard from: offline, which is no news
    const beat = (at: number) =>
      m.db
        .update(agents)
        .set({ lastHeartbeatAt: at, plugins: JSON.stringify([{ name: "passive", state: "running" }]) })
        .run();
    beat(T0 + 1_000);
    watcher.pass(T0 + 2_000);
    watcher.pass(T0 + 25_000); // 24 s without a heartbeat: unhealthy
    watcher.pass(T0 + 70_000); // 69 s: offline
    beat(T0 + 71_000);
    discovery = "failing";
    watcher.pass(T0 + 72_000);
    discovery = "registered";
    watcher.pass(T0 + 73_000);
    const { events: list } = await m.get<EventsResponse>("/v1/events");
    expect(list.reverse().map((e) => `${e.kind} ${e.attributes.from}→${e.attributes.to}`)).toEqual([
      "agent.health_changed offline→healthy",
      "agent.health_changed healthy→unhealthy",
      "agent.health_changed unhealthy→offline",
      "agent.health_changed offline→healthy",
      "discovery.failing registered→failing",
      "discovery.recovered failing→registered",
    ]);
    expect(list.every((e) => e.source === "coordinator")).toBe(true);
    expect(seen.map((h) => h.to)).toEqual(["healthy", "unhealthy", "offline", "healthy"]);
    // A restarted coordinator knows the health it last announced.
    const again = new MeshWatcher({ db: m.db, observe: observer(m.db), heartbeatIntervalMs: 10_000 });
    again.pass(T0 + 74_000);
    expect(m.db.select().from(events).all()).toHaveLength(6);
  });
});

describe("plugin changes and clocks", () => {
  it("are events only when a plugin fails, degrades or recovers", () => {
    const p = (state: string) => [{ name: "passive", state, lastError: state === "running" ? null : "EACCES" }];
    expect(pluginChanges(p("starting"), p("running"))).toEqual([]);
    expect(pluginChanges(p("running"), p("degraded")).map((c) => c.kind)).toEqual(["plugin.degraded"]);
    expect(pluginChanges(p("degraded"), p("failed")).map((c) => c.kind)).toEqual(["plugin.failed"]);
    expect(pluginChanges(p("failed"), p("running")).map((c) => `${c.kind} from ${c.from}`)).toEqual(["plugin.recovered from failed"]);
    expect(pluginChanges([], p("failed")).map((c) => c.from)).toEqual(["none"]);
  });

  it("estimate an agent's offset as the least-delayed of its recent requests", () => {
    const written: number[] = [];
    const clocks = new ClockOffsets((_agent, offset) => written.push(offset));
    // The agent's clock is 2 s ahead; delays of 80, 3, 40 ms.
    clocks.record("a", T0 + 2_000, T0 + 80);
    clocks.record("a", T0 + 12_000, T0 + 10_003);
    clocks.record("a", T0 + 22_000, T0 + 20_040);
    clocks.record("a", 0, T0); // an older agent sends no time: no sample
    expect(written).toEqual([1_920, 1_997]);
  });
});

describe("stores from before the model", () => {
  it("have their per-row samples converted into series and frames when opened", async () => {
    const dir = tempDir();
    const path = join(dir, "coral.db");
    // The store as 0.1.0 left it: migrations 0000 and 0001 only.
    const old = join(dir, "migrations");
    const current = join(import.meta.dirname, "..", "migrations");
    cpSync(current, old, { recursive: true });
    const journal = JSON.parse(readFileSync(join(old, "meta", "_journal.json"), "utf8")) as { entries: Array<{ tag: string }> };
    journal.entries = journal.entries.filter((e) => e.tag.startsWith("0000") || e.tag.startsWith("0001"));
    writeFileSync(join(old, "meta", "_journal.json"), JSON.stringify(journal));
    const sqlite = new Database(path);
    migrate(drizzle(sqlite), { migrationsFolder: old });
    const insert = sqlite.prepare(
      "INSERT INTO metric_samples (agent_name, name, subject_id, time, value, labels) VALUES (?, ?, ?, ?, ?, ?)",
    );
    for (let i = 0; i < 30; i++) {
      insert.run("web-1", "service.cpu.cores", "script:node /srv/api.js", T0 + i * 10_000, i / 100, "{}");
      insert.run("web-1", "host.load1", "host", T0 + i * 10_000, 0.5, "{}");
    }
    sqlite
      .prepare("INSERT INTO services (agent_name, key, name, source, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)")
      .run("web-1", "script:node /srv/api.js", "api", "passive", T0, T0);
    sqlite.close();

    const db = openStore(path);
    const tables = db.$client.prepare("SELECT name FROM sqlite_master WHERE name = 'metric_samples'").all();
    expect(tables).toEqual([]);
    expect(db.select().from(metricFrames).all()).toHaveLength(30);
    const m = await modelApi(db, dir, () => T0 + 300_000);
    const metrics = (await (await m.request("/v1/services/api/metrics")).json()) as MetricsResponse;
    expect(metrics.series[0]?.points.map((p) => p.avg)).toEqual(Array.from({ length: 30 }, (_, i) => i / 100));
  });
});
