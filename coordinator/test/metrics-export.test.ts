/**
 * GET /metrics (Prometheus), GET /v1/metrics/latest and GET /v1/export with `coral export`,
 * over a real SQLite store seeded through drizzle and the ingest path; the CLI against the API
 * served on loopback.
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportDocumentSchema, latestMetricsResponseSchema } from "@coral-mesh/sdk-proto";
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { serve } from "@hono/node-server";
import { eq } from "drizzle-orm";
import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportDump } from "../src/cli/export-command.js";
import { runCli } from "../src/index.js";
import { prepareIngest } from "../src/rpc/ingest.js";
import { openStore, type Store } from "../src/store/db.js";
import { agents, events } from "../src/store/schema.js";
import { NOW, seedFindings, seedMesh } from "./fixtures/findings-seed.js";
import { modelApi } from "./fixtures/model-api.js";

const SERVICE = meshV1.SubjectKind.SUBJECT_KIND_SERVICE;
const TOKEN = "t".repeat(40);
const MANY = 2_600;

let dir: string;
let db: Store;
let app: Hono;
let locked: Hono;
let server: ReturnType<typeof serve>;
let url: string;

/** A Prometheus text exposition as samples: `name{a="b",...}` → value. Comments are checked to name known metrics. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === "TYPE") typed.add(meta[2] as string);
      continue;
    }
    const m = /^([a-z_:][a-z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const name = m[1] as string;
    if (!typed.has(name.replace(/_total$/, "")) && !typed.has(name)) throw new Error(`${name} has no TYPE line`);
    const labels = [...(m[2] ?? "").matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}=${v}`).sort();
    samples.set(labels.length > 0 ? `${name}{${labels.join(",")}}` : name, Number(m[3]));
  }
  return samples;
}

const restartEvent = (time: number) => ({
  agentName: "web-1",
  kind: "process.restarted",
  time,
  receivedAt: time,
  subjectKind: "service",
  subjectId: "exe:/srv/api",
  subjectName: "api",
  attributes: "{}",
  evidence: "{}",
  source: "passive",
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coral-metrics-export-"));
  db = openStore(join(dir, "data", "coral.db"));
  seedMesh(db);
  seedFindings(db);
  db.update(agents)
    .set({ lastHeartbeatAt: NOW - 5_000, plugins: JSON.stringify([{ name: "passive", state: "running" }]) })
    .where(eq(agents.name, "web-1"))
    .run();
  const ingest = prepareIngest(db);
  const metric = (name: string, value: number, t: number, id: string, service: string) => ({
    name,
    value,
    timeUnixMs: t,
    subject: { kind: SERVICE, id, name: service },
    labels: {},
    source: "passive",
  });
  const batch = (sequence: number, t: number, metrics: ReturnType<typeof metric>[]): meshV1.Batch => ({
    sequence,
    createdAtUnixMs: t,
    droppedBefore: 0,
    events: [],
    metrics,
    connections: [],
  });
  // The worker last reported ten minutes ago: stale, so it is left out. The api twice, the latest counts.
  ingest("web-1", [batch(1, NOW - 600_000, [metric("service.cpu.cores", 2, NOW - 600_000, "exe:/srv/worker", "worker")])], NOW - 600_000);
  ingest(
    "web-1",
    [
      batch(2, NOW - 20_000, [
        metric("service.cpu.cores", 0.25, NOW - 20_000, "exe:/srv/api", "api"),
        metric("service.memory.rss_bytes", 100_000_000, NOW - 20_000, "exe:/srv/api", "api"),
      ]),
    ],
    NOW - 20_000,
  );
  ingest(
    "web-1",
    [
      batch(3, NOW - 10_000, [
        metric("service.cpu.cores", 0.5, NOW - 10_000, "exe:/srv/api", "api"),
        metric("service.memory.rss_bytes", 120_000_000, NOW - 10_000, "exe:/srv/api", "api"),
      ]),
    ],
    NOW - 10_000,
  );
  ingest.flush();
  db.insert(events)
    .values(
      Array.from({ length: MANY }, (_, i) => ({
        agentName: "db-1",
        kind: "port.opened",
        time: NOW - 3_600_000 + i,
        receivedAt: NOW - 3_600_000 + i,
        subjectKind: "service",
        subjectId: "exe:/usr/bin/postgres",
        subjectName: "postgres",
        attributes: JSON.stringify({ n: String(i) }),
        evidence: "{}",
        source: "passive",
      })),
    )
    .run();
  app = await modelApi(db, dir, () => NOW);
  locked = await modelApi(db, dir, () => NOW, { token: TOKEN });
  await new Promise<void>((ready) => {
    server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => {
      url = `http://127.0.0.1:${info.port}`;
      ready();
    });
  });
});

afterAll(async () => {
  await new Promise((done) => server?.close(done));
  db?.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("GET /metrics", () => {
  it("exposes agents, service health, CPU and memory, and open findings by severity", async () => {
    const res = await app.request("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parseExposition(await res.text());
    expect(m.get("coral_agent_up{agent=web-1}")).toBe(1);
    expect(m.get("coral_agent_up{agent=db-1}")).toBe(0);
    expect(m.get("coral_agent_health{agent=web-1,health=healthy}")).toBe(1);
    expect(m.get("coral_agent_health{agent=db-1,health=offline}")).toBe(1);
    expect(m.get("coral_agent_health{agent=db-1,health=healthy}")).toBe(0);
    expect(m.get("coral_service_health{agent=web-1,health=serving,service=web}")).toBe(1);
    expect(m.get("coral_service_health{agent=web-1,health=unknown,service=api}")).toBe(1);
    expect(m.get("coral_service_health{agent=db-1,health=unknown,service=postgres}")).toBe(1);
    expect(m.get("coral_service_instances{agent=web-1,service=api}")).toBe(1);
    expect(m.get("coral_service_last_seen_timestamp_seconds{agent=web-1,service=api}")).toBe((NOW - 60_000) / 1000);
    expect(m.get("coral_service_cpu_cores{agent=web-1,instance_key=exe:/srv/api,service=api}")).toBe(0.5);
    expect(m.get("coral_service_memory_rss_bytes{agent=web-1,instance_key=exe:/srv/api,service=api}")).toBe(120_000_000);
    expect([...m.keys()].filter((k) => k.includes("service=worker") && k.startsWith("coral_service_cpu"))).toEqual([]);
    expect(m.get("coral_findings_open{severity=critical}")).toBe(1);
    expect(m.get("coral_findings_open{severity=warning}")).toBe(3);
    expect(m.get("coral_findings_open{severity=info}")).toBe(1);
  });

  it("counts restarts stored after the coordinator started, never fewer", async () => {
    const restarts = async () =>
      parseExposition(await (await app.request("/metrics")).text()).get("coral_service_restarts_total{agent=web-1,service=api}");
    // The two restarts seeded before the API was made came before this coordinator's time.
    expect(await restarts()).toBeUndefined();
    db.insert(events)
      .values([restartEvent(NOW - 2_000), restartEvent(NOW - 1_000)])
      .run();
    expect(await restarts()).toBe(2);
    db.insert(events)
      .values(restartEvent(NOW - 500))
      .run();
    expect(await restarts()).toBe(3);
    expect(await restarts()).toBe(3);
  });

  it("needs the API token when the API has one", async () => {
    const refused = await locked.request("/metrics");
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { code: string }).code).toBe("api_unauthorized");
    const wrong = await locked.request("/metrics", { headers: { authorization: `Bearer ${"x".repeat(40)}` } });
    expect(wrong.status).toBe(401);
    const ok = await locked.request("/metrics", { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(parseExposition(await ok.text()).get("coral_findings_open{severity=critical}")).toBe(1);
  });
});

describe("GET /v1/metrics/latest", () => {
  it("answers each live instance's latest CPU and memory", async () => {
    const body = latestMetricsResponseSchema.parse(await (await app.request("/v1/metrics/latest")).json());
    expect(body.samples).toEqual([
      { service: "api", agent: "web-1", key: "exe:/srv/api", metric: "service.cpu.cores", t: NOW - 10_000, value: 0.5 },
      { service: "api", agent: "web-1", key: "exe:/srv/api", metric: "service.memory.rss_bytes", t: NOW - 10_000, value: 120_000_000 },
    ]);
    const one = latestMetricsResponseSchema.parse(await (await app.request("/v1/metrics/latest?metric=service.memory.rss_bytes")).json());
    expect(one.samples.map((s) => s.metric)).toEqual(["service.memory.rss_bytes"]);
    const bad = await app.request("/v1/metrics/latest?metric=a%20b");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe("invalid_query");
  });
});

describe("coral export", () => {
  const since = new Date(NOW - 86_400_000).toISOString();

  it("writes services, topology, findings and every event of the window as one document", async () => {
    let out = "";
    let err = "";
    const code = await runCli(["export", "--since", since, "--api", url], { out: (t) => (out += t), err: (t) => (err += t) });
    expect(err).toMatch(/^coral export: 6 services, 3 edges, 6 findings and \d+ events since 2027-01-14T\S+ \(/);
    expect(code).toBe(0);
    const doc = exportDocumentSchema.parse(JSON.parse(out));
    expect(doc.window).toEqual({ from: NOW - 86_400_000, to: NOW });
    expect(doc.services.map((s) => s.name)).toEqual(["api", "cache", "old-svc", "postgres", "web", "worker"]);
    expect(doc.services.find((s) => s.name === "postgres")?.instances?.map((i) => i.agent)).toEqual(["db-1"]);
    expect(doc.topology.edges.map((e) => `${e.from} -> ${e.to}`)).toEqual([
      "service:api -> service:postgres",
      "service:web -> external:203.0.113.80:443",
      "service:web -> service:postgres",
    ]);
    // Open ones and the one resolved within the day; not f7, resolved three days ago.
    expect(doc.findings.map((f) => f.id).sort()).toEqual(["f1", "f2", "f3", "f4", "f5", "f6"]);
    // Every event of the window, across pages, newest first, none twice; not the deploy of two days ago.
    const ids = doc.events.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(doc.events.filter((e) => e.kind === "port.opened")).toHaveLength(MANY);
    expect(doc.events.every((e) => e.time >= NOW - 86_400_000)).toBe(true);
    expect(doc.totals).toEqual({ services: 6, edges: 3, findings: 6, events: doc.events.length });
  });

  it("is written a page at a time, not built whole", async () => {
    const res = await app.request(`/v1/export?since=${NOW - 86_400_000}`);
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let chunks = 0;
    let biggest = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      chunks++;
      biggest = Math.max(biggest, r.value.byteLength);
    }
    // The head, the findings, three pages of events (2,600 and a few), the end.
    expect(chunks).toBeGreaterThanOrEqual(6);
    expect(biggest).toBeLessThan(400_000);
  });

  it("reports progress on stderr while a long export runs", async () => {
    let t = NOW;
    const lines: string[] = [];
    let out = "";
    const code = await exportDump({ api: url, since }, { out: (x) => (out += x), err: (x) => lines.push(x) }, () => (t += 700));
    expect(code).toBe(0);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.slice(0, -1).every((l) => /^coral export: [\d.]+ [kM]?B so far \(\d+s\)\n$/.test(l))).toBe(true);
    expect(exportDocumentSchema.safeParse(JSON.parse(out)).success).toBe(true);
  });

  it("refuses a bad --since and needs the token", async () => {
    let err = "";
    const bad = await runCli(["export", "--since", "yesterday", "--api", url], { out: () => {}, err: (t) => (err += t) });
    expect(bad).toBe(1);
    expect(err).toContain("[config_invalid] --since yesterday is neither a span");
    const res = await locked.request("/v1/export");
    expect(res.status).toBe(401);
    const query = await app.request("/v1/export?since=soon");
    expect(query.status).toBe(400);
    expect(((await query.json()) as { code: string }).code).toBe("invalid_query");
  });
});

describe("coral top, not in a terminal", () => {
  it("prints the view once, as text or JSON, and exits", async () => {
    let out = "";
    const code = await runCli(["top", "--api", url], { out: (t) => (out += t), err: () => {} });
    expect(code).toBe(0);
    const lines = out.split("\n");
    // The API's clock is NOW, the samples' too; the seeded findings: 1 critical, 3 warning, 1 info.
    expect(lines[0]).toBe("6 services, 5 open findings (1 critical, 3 warning, 1 info)");
    expect(lines.find((l) => l.startsWith("api "))).toMatch(/^api\s+-\s+1\s+1\s+0\.50\s+120\.0 MB\s+1 warning$/);
    expect(lines.find((l) => l.startsWith("web "))).toMatch(/^web\s+serving\s+1\s+1\s+-\s+-\s+1 warning$/);
    expect(out).toMatch(/^critical\s+postgres\s+dependency-down\s+/m);
    let json = "";
    expect(await runCli(["top", "--json", "--api", url], { out: (t) => (json += t), err: () => {} })).toBe(0);
    const data = JSON.parse(json) as { services: unknown[]; samples: unknown[]; findings: unknown[] };
    expect([data.services.length, data.samples.length, data.findings.length]).toEqual([6, 2, 5]);
  });
});
