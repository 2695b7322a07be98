/**
 * `coral services`, `coral topology`, `coral metrics` and `coral events` against the real API
 * served on loopback over a real store; and the CLI as a process writing a megabyte into a
 * pipe that is read slowly.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EventView, MetricsResponse, ServicesResponse, ServiceView, TopologyResponse } from "@coral-mesh/sdk-proto";
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/index.js";
import { prepareIngest } from "../src/rpc/ingest.js";
import { openStore, type Store } from "../src/store/db.js";
import { agents } from "../src/store/schema.js";
import { tsxNode } from "../src/testing.js";
import { modelApi } from "./fixtures/model-api.js";

const SERVICE = meshV1.SubjectKind.SUBJECT_KIND_SERVICE;
const EVENTS = 3_000;

let dir: string;
let db: Store;
let url: string;
let server: ReturnType<typeof serve>;
let now: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coral-cli-model-"));
  db = openStore(join(dir, "data", "coral.db"));
  now = Date.now();
  const app = await modelApi(db, dir);
  db.insert(agents)
    .values({ name: "web-1", wireguardKey: "k1", meshIp: "100.64.0.2", enrolledAt: now, addresses: ["198.51.100.10"] })
    .run();
  db.insert(agents)
    .values({ name: "db-1", wireguardKey: "k2", meshIp: "100.64.0.3", enrolledAt: now, addresses: ["198.51.100.20"] })
    .run();
  const ingest = prepareIngest(db);
  const subject = (id: string, name: string) => ({ kind: SERVICE, id, name });
  const ev = (kind: string, id: string, name: string, attributes: Record<string, string>, time = now - 60_000) => ({
    kind,
    timeUnixMs: time,
    subject: subject(id, name),
    attributes,
    evidenceJson: JSON.stringify({ note: "x".repeat(100) }),
    source: "passive",
  });
  const batch = (sequence: number, parts: Partial<meshV1.Batch>): meshV1.Batch => ({
    sequence,
    createdAtUnixMs: now,
    droppedBefore: 0,
    events: [],
    metrics: [],
    connections: [],
    ...parts,
  });
  ingest(
    "db-1",
    [batch(1, { events: [ev("service.observed", "exe:/usr/bin/postgres", "postgres", { source: "passive", listening: "0.0.0.0:5432" })] })],
    now,
  );
  ingest(
    "web-1",
    [batch(1, { events: [ev("service.observed", "script:node /srv/api.js", "api", { source: "sdk", version: "1.4.0" })] })],
    now,
  );
  for (let i = 0; i < 30; i++) {
    const t = now - (30 - i) * 10_000;
    ingest(
      "web-1",
      [
        batch(10 + i, {
          metrics: [
            {
              name: "service.memory.rss_bytes",
              value: 50_000_000 + i * 1_000_000,
              timeUnixMs: t,
              subject: subject("script:node /srv/api.js", "api"),
              labels: {},
              source: "passive",
            },
          ],
          connections: [
            {
              protocol: "tcp",
              localAddress: "198.51.100.10",
              localPort: 40000 + i,
              remoteAddress: "198.51.100.20",
              remotePort: 5432,
              pid: 7,
              processName: "api",
              subject: subject("script:node /srv/api.js", "api"),
              observedAtUnixMs: t,
              source: "passive",
            },
          ],
        }),
      ],
      t,
    );
  }
  ingest.flush();
  for (let b = 0; b < EVENTS / 100; b++) {
    ingest(
      "web-1",
      [
        batch(1_000 + b, {
          events: Array.from({ length: 100 }, (_, i) => ev("port.opened", "script:node /srv/api.js", "api", { n: String(b * 100 + i) })),
        }),
      ],
      now,
    );
  }
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

async function coral(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli([...argv, "--api", url], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe("coral services", () => {
  it("lists each service with where it runs and what it depends on", async () => {
    const { code, out } = await coral("services");
    expect(code).toBe(0);
    const lines = out.trim().split("\n");
    expect(lines[0]).toMatch(/^SERVICE\s+INSTANCES\s+AGENTS\s+VERSIONS\s+SOURCE\s+HEALTH\s+LISTENS\s+DEPENDS ON\s+USED BY\s+LAST SEEN$/);
    expect(lines.find((l) => l.startsWith("api "))).toMatch(/^api\s+1\s+web-1\s+1\.4\.0\s+sdk\s+-\s+-\s+postgres:5432\s+-\s+/);
    expect(lines.find((l) => l.startsWith("postgres "))).toMatch(/^postgres\s+1\s+db-1\s+-\s+passive\s+-\s+:5432\s+-\s+api\s+/);
    const json = JSON.parse((await coral("services", "--json")).out) as ServicesResponse["services"];
    expect(json.map((s) => [s.name, s.instanceCount, s.instances])).toEqual([
      ["api", 1, undefined],
      ["postgres", 1, undefined],
    ]);
    const full = JSON.parse((await coral("services", "--json", "--instances")).out) as ServicesResponse["services"];
    expect(full.map((s) => s.instances?.map((i) => i.agent))).toEqual([["web-1"], ["db-1"]]);
  });

  it("shows one service with its instances, or says there is none", async () => {
    const { code, out } = await coral("services", "postgres");
    expect(code).toBe(0);
    expect(out).toMatch(/^postgres: 1 instance on 1 agent, passive\n/);
    expect(out).toMatch(/used by: {4}api \(/);
    expect(out.split("\n").find((l) => l.startsWith("db-1 "))).toMatch(/^db-1\s+exe:\S+\s+-\s+passive\s+-\s+0\.0\.0\.0:5432/);
    const json = JSON.parse((await coral("services", "postgres", "--json")).out) as ServiceView;
    expect(json.instances.map((i) => i.agent)).toEqual(["db-1"]);
    const missing = await coral("services", "nope");
    expect(missing.code).toBe(1);
    expect(missing.err).toBe("coral: [service_not_found] No service named nope; `coral services` lists them.\n");
  });
});

describe("coral topology", () => {
  it("draws the graph as text, JSON and Graphviz", async () => {
    const text = await coral("topology");
    expect(text.code).toBe(0);
    expect(text.out).toContain("api  (web-1)\n  → postgres:5432/tcp on db-1  seen");
    expect(text.out).toMatch(/30×/);
    const json = JSON.parse((await coral("topology", "--json")).out) as TopologyResponse;
    expect(json.edges.map((e) => `${e.from} -> ${e.to}`)).toEqual(["service:api -> service:postgres"]);
    const dot = await coral("topology", "--format", "dot");
    expect(dot.out).toMatch(/^digraph coral \{/);
    expect(dot.out).toContain('"service:api" -> "service:postgres" [label="5432/tcp"];');
    const bad = await coral("topology", "--format", "png");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("--format png is not one of text, json, dot.");
  });
});

describe("coral metrics", () => {
  it("shows a service's series with a trend line", async () => {
    const { code, out } = await coral("metrics", "api", "--since", "10m");
    expect(code).toBe(0);
    expect(out).toContain("api: the last 10m, raw samples");
    const row = out.split("\n").find((l) => l.startsWith("service.memory.rss_bytes"));
    expect(row).toMatch(/web-1\s+79\.0 MB\s+50\.0 MB\s+64\.5 MB\s+79\.0 MB\s+▁[▁▂▃▄▅▆▇█]+█$/);
    const json = JSON.parse((await coral("metrics", "api", "--json")).out) as MetricsResponse;
    expect(json.series[0]?.points).toHaveLength(30);
    const missing = await coral("metrics", "nope");
    expect(missing.code).toBe(1);
    expect(missing.err).toBe("coral: [service_not_found] No service named nope; `coral services` lists them.\n");
  });
});

describe("coral events", () => {
  it("pages through more events than one API page", async () => {
    const { out } = await coral("events", "--kind", "port.opened", "--limit", "2500", "--json");
    const events = JSON.parse(out) as EventView[];
    expect(events).toHaveLength(2500);
    expect(new Set(events.map((e) => e.id)).size).toBe(2500);
    const next = await coral("events", "--kind", "port.opened", "--before", String(events.at(-1)?.id), "--limit", "1000", "--json");
    expect((JSON.parse(next.out) as EventView[]).map((e) => e.attributes.n)).toEqual(
      Array.from({ length: 500 }, (_, i) => String(499 - i)),
    );
  });

  it("writes all of a megabyte into a pipe read slowly, then exits", async () => {
    const child = spawn(
      tsxNode[0] as string,
      [...tsxNode.slice(1), "src/cli.ts", "events", "--kind", "port.opened", "--limit", String(EVENTS), "--json", "--api", url],
      { cwd: join(import.meta.dirname, ".."), stdio: ["ignore", "pipe", "pipe"] },
    );
    const chunks: Buffer[] = [];
    // A reader slower than the writer, so the pipe is full when the CLI is done with its writes.
    const reading = (async () => {
      for await (const chunk of child.stdout) {
        chunks.push(chunk as Buffer);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const code = await new Promise<number | null>((done) => child.on("close", done));
    await reading;
    const text = Buffer.concat(chunks).toString("utf8");
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(text.length).toBeGreaterThan(1_000_000);
    expect((JSON.parse(text) as EventView[]).length).toBe(EVENTS);
  }, 60_000);
});
