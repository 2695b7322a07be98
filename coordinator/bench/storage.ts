/**
 * What the store costs on disk. One simulated hour of N hosts' batches (bench/hosts.ts, one
 * every 10 s each) goes through the real ingest (`prepareIngest`) at simulated times, as fast
 * as it runs, with a rollup pass every simulated minute as the coordinator runs one. The same
 * samples also go, a row each, into the layout the store had before metric series
 * (`metric_samples`, names on every row, two indexes), in a database of its own beside it.
 * Sizes are SQLite's own (`dbstat`: pages per table and index, as filled, after a checkpoint).
 * The steady-state size of a fleet then follows from the costs per unit and the retentions.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import Database from "better-sqlite3";
import { prepareIngest } from "../src/rpc/ingest.js";
import { openStore } from "../src/store/db.js";
import { labelsKey, unpackAggregates } from "../src/store/frames.js";
import { DEFAULT_RETENTION } from "../src/store/retention.js";
import { HOUR_MS, MINUTE_MS, Rollups } from "../src/store/rollups.js";
import { agents } from "../src/store/schema.js";
import { hostAddress, meshAddress, SAMPLES_PER_BATCH, SimulatedHost } from "./hosts.js";

/** The agents' default collect interval: the steady state is computed for it. */
const INTERVAL_MS = 10_000;
const DAY_MS = 86_400_000;
/** A Monday at midnight UTC: the simulated hour is one whole hour bucket. */
const T0 = Date.UTC(2026, 0, 5);

export interface StorageOptions {
  /** Hosts simulated for the hour. */
  agents: number;
  /** The fleet the steady state is computed for; the simulated hosts are its last ones, so series ids are as long as there. */
  fleet: number;
  out: (line: string) => void;
  /** Stops the simulation between two intervals (the temporary store is removed all the same). */
  signal?: AbortSignal;
}

type Sizes = Map<string, number>;

/** Bytes of pages in use per table, its indexes included, after a checkpoint. */
function sizes(sqlite: Database.Database): Sizes {
  sqlite.pragma("wal_checkpoint(TRUNCATE)");
  const rows = sqlite
    .prepare<[], { table: string; bytes: number }>(
      'SELECT coalesce(m.tbl_name, s.name) AS "table", sum(s.pgsize) AS bytes FROM dbstat s LEFT JOIN sqlite_schema m ON m.name = s.name GROUP BY 1',
    )
    .all();
  return new Map(rows.map((r) => [r.table, r.bytes]));
}

const fileBytes = (sqlite: Database.Database) => {
  const pages = sqlite.pragma("page_count", { simple: true }) as number;
  return pages * (sqlite.pragma("page_size", { simple: true }) as number);
};

const pct = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))] ?? Number.NaN;
const median = (values: number[]) => pct(values, 50);
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const gb = (bytes: number) => (bytes < 1e9 ? mb(bytes) : `${(bytes / 1e9).toFixed(1)} GB`);

export async function storageBench(options: StorageOptions): Promise<void> {
  const { out } = options;
  const count = Math.min(options.agents, options.fleet);
  const dir = mkdtempSync(join(tmpdir(), "coral-bench-storage-"));
  try {
    const db = openStore(join(dir, "coral.db"));
    const sqlite = db.$client;
    // In memory: its pages are what a file's would be (4 KiB, filled in the order the rows
    // came); through a file, a row per sample took minutes to write.
    const legacy = new Database(":memory:");
    legacy.exec(`
      CREATE TABLE metric_samples (agent_name TEXT NOT NULL, name TEXT NOT NULL, subject_id TEXT NOT NULL, time INTEGER NOT NULL, value REAL NOT NULL, labels TEXT NOT NULL DEFAULT '{}');
      CREATE INDEX metric_samples_series ON metric_samples (agent_name, name, subject_id, time);
      CREATE INDEX metric_samples_time ON metric_samples (time);
    `);
    const insertLegacy = legacy.prepare(
      "INSERT INTO metric_samples (agent_name, name, subject_id, time, value, labels) VALUES (?, ?, ?, ?, ?, ?)",
    );
    // A transaction per simulated interval, not per batch as that layout's ingest had it: the
    // rows and their order are the same, and a commit per batch only made the run slow.
    const storeLegacy = legacy.transaction((rows: Array<{ agent: string; metrics: meshV1.Batch["metrics"] }>) => {
      for (const { agent, metrics } of rows)
        for (const m of metrics) insertLegacy.run(agent, m.name, m.subject?.id ?? "", m.timeUnixMs, m.value, labelsKey(m.labels));
    });

    const hosts = Array.from({ length: count }, (_, k) => new SimulatedHost(options.fleet - count + k, options.fleet));
    db.transaction((tx) => {
      for (const h of hosts)
        tx.insert(agents)
          .values({
            name: h.name,
            wireguardKey: `key-${h.index}`,
            meshIp: meshAddress(h.index),
            enrolledAt: T0,
            addresses: [hostAddress(h.index)],
          })
          .run();
    });
    // Series ids as the fleet's last hosts would have them: a varint's length grows with the id.
    sqlite.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('metric_series', ?)").run((options.fleet - count) * SAMPLES_PER_BATCH);

    out(
      `Storage: one simulated hour of ${count} hosts (${SAMPLES_PER_BATCH} samples / 10 s each) through prepareIngest, rollups every simulated minute`,
    );
    const ingest = prepareIngest(db);
    const rollups = new Rollups(db);
    const passes: number[] = [];
    const pass = async (now: number) => {
      const started = performance.now();
      await rollups.pass(now, async () => {}); // no pauses: its CPU alone is measured here
      passes.push(performance.now() - started);
    };
    let ingestMs = 0;
    /** Each batch's ingest after the first (which observes every service): what blocks the event loop per Report. */
    const steady: number[] = [];
    let batches = 0;
    let events = 0;
    for (let step = 0; step < HOUR_MS / INTERVAL_MS; step++) {
      const stepStart = T0 + step * INTERVAL_MS;
      await new Promise((resolve) => setImmediate(resolve));
      options.signal?.throwIfAborted();
      if (step > 0 && stepStart % MINUTE_MS === 0) await pass(stepStart);
      const rows: Array<{ agent: string; metrics: meshV1.Batch["metrics"] }> = [];
      hosts.forEach((h, k) => {
        // Hosts collect at their own phase of the interval, as real agents drift apart.
        const at = stepStart + Math.floor((k / count) * INTERVAL_MS);
        const batch = h.collect(at);
        const started = performance.now();
        ingest(h.name, [batch], at + 20);
        const ms = performance.now() - started;
        ingestMs += ms;
        if (batch.sequence > 1) steady.push(ms);
        rows.push({ agent: h.name, metrics: batch.metrics });
        batches++;
        // The first batch observes every service once; the steady state's events are the rest.
        if (batch.sequence > 1) events += batch.events.length;
      });
      storeLegacy(rows);
    }
    const minutePasses = [...passes];
    passes.length = 0;
    await pass(T0 + HOUR_MS + 31_000); // folds the last minute, then the hour: 30 s of grace after it ends
    const hourPassMs = passes[0] ?? Number.NaN;

    const samples = batches * SAMPLES_PER_BATCH;
    const store = sizes(sqlite);
    const old = sizes(legacy);
    const of = (s: Sizes, table: string) => s.get(table) ?? 0;
    const seriesUnits = (resolution: number) => {
      let n = 0;
      for (const row of sqlite
        .prepare<[number], { data: Buffer }>("SELECT data FROM metric_rollups WHERE resolution_ms = ?")
        .iterate(resolution))
        unpackAggregates(row.data, () => n++);
      return n;
    };
    const seriesMinutes = seriesUnits(MINUTE_MS);
    const seriesHours = seriesUnits(HOUR_MS);
    const counts = sqlite
      .prepare<[], { series: number; receipts: number; stored: number; services: number; edges: number; edgeHours: number }>(
        `SELECT (SELECT count(*) FROM metric_series) AS series, (SELECT count(*) FROM batches) AS receipts,
           (SELECT count(*) FROM events) AS stored, (SELECT count(*) FROM services) AS services,
           (SELECT count(*) FROM topology_edges) AS edges, (SELECT count(*) FROM topology_edge_hours) AS edgeHours`,
      )
      .get() as { series: number; receipts: number; stored: number; services: number; edges: number; edgeHours: number };
    const rollupBytes = of(store, "metric_rollups");
    // The hour rows alone: the minute rows deleted, what is left of the table and its indexes.
    sqlite.prepare("DELETE FROM metric_rollups WHERE resolution_ms = ?").run(MINUTE_MS);
    const hourBytes = of(sizes(sqlite), "metric_rollups");
    const minuteBytes = rollupBytes - hourBytes;

    const perSample = of(store, "metric_frames") / samples;
    const perSampleOld = of(old, "metric_samples") / samples;
    const perMinute = minuteBytes / seriesMinutes;
    const perHour = hourBytes / seriesHours;
    const perSeries = of(store, "metric_series") / counts.series;
    const perReceipt = of(store, "batches") / counts.receipts;
    const perEvent = of(store, "events") / counts.stored;
    const perEdgeHour = of(store, "topology_edge_hours") / counts.edgeHours;
    const b = (n: number) => n.toFixed(2);
    out(
      [
        `  ingest: ${batches} batches, ${samples} samples in ${(ingestMs / 1000).toFixed(1)} s (${Math.round(batches / (ingestMs / 1000))} batches/s, ${(ingestMs / batches).toFixed(2)} ms each)`,
        `  one batch's ingest (after the first): p50 ${b(pct(steady, 50))} ms, p99 ${b(pct(steady, 99))} ms, max ${b(Math.max(...steady))} ms`,
        `  rollup passes (${count} hosts): a minute's ${b(median(minutePasses))} ms median, ${b(Math.max(...minutePasses))} ms max; the hour's ${b(hourPassMs)} ms`,
        `  raw samples, packed (metric_frames, 2 indexes): ${mb(of(store, "metric_frames"))}, ${b(perSample)} bytes a sample`,
        `  raw samples, a row each (metric_samples, 2 indexes): ${mb(of(old, "metric_samples"))}, ${b(perSampleOld)} bytes a sample (${(perSampleOld / perSample).toFixed(1)}x)`,
        `  rollups: ${b(perMinute)} bytes a series-minute (${seriesMinutes}), ${b(perHour)} bytes a series-hour (${seriesHours})`,
        `  per row: series ${b(perSeries)} B, batch receipt ${b(perReceipt)} B, event ${b(perEvent)} B, edge-hour ${b(perEdgeHour)} B`,
        `  files: store ${mb(fileBytes(sqlite))} (${mb(statSync(join(dir, "coral.db")).size)} on disk), row-per-sample ${mb(fileBytes(legacy))}`,
      ].join("\n"),
    );

    // The steady state: what the default retentions keep for the fleet, from the costs per unit.
    const f = options.fleet;
    const r = DEFAULT_RETENTION;
    const collects = (ms: number) => ms / INTERVAL_MS;
    const series = f * SAMPLES_PER_BATCH;
    const edgesAtFleet = (counts.edges / count) * f;
    const eventsPerBatch = events / (batches - count);
    const parts: Array<[string, number, string]> = [
      [
        "raw samples",
        f * SAMPLES_PER_BATCH * collects(r.rawMs) * perSample,
        `${f} × ${SAMPLES_PER_BATCH} × ${collects(r.rawMs)} collects × ${b(perSample)} B`,
      ],
      [
        "minute rollups",
        series * (r.minuteMs / MINUTE_MS) * perMinute,
        `${series} series × ${r.minuteMs / MINUTE_MS} min × ${b(perMinute)} B`,
      ],
      ["hour rollups", series * (r.hourMs / HOUR_MS) * perHour, `${series} series × ${r.hourMs / HOUR_MS} h × ${b(perHour)} B`],
      ["batch receipts", f * collects(r.rawMs) * perReceipt, `${f} × ${collects(r.rawMs)} × ${b(perReceipt)} B`],
      ["series", series * perSeries, `${series} × ${b(perSeries)} B`],
      [
        "edge-hours",
        edgesAtFleet * (r.hourMs / HOUR_MS) * perEdgeHour,
        `${Math.round(edgesAtFleet)} edges × ${r.hourMs / HOUR_MS} h × ${b(perEdgeHour)} B`,
      ],
    ];
    const metricsTotal = parts.reduce((sum, [, bytes]) => sum + bytes, 0);
    const eventBytes = f * collects(r.eventsMs) * eventsPerBatch * perEvent;
    out(
      `  steady state at ${f} hosts, default retentions (raw ${r.rawMs / DAY_MS} d, 1 min ${r.minuteMs / DAY_MS} d, 1 h ${r.hourMs / DAY_MS} d):`,
    );
    for (const [label, bytes, how] of parts) out(`    ${label.padEnd(15)} ${gb(bytes).padStart(8)}  (${how})`);
    out(`    ${"total".padEnd(15)} ${gb(metricsTotal).padStart(8)}`);
    out(
      `    events ${r.eventsMs / DAY_MS} d at this bench's ${eventsPerBatch.toFixed(3)} a batch: ${gb(eventBytes)} more; raw samples a row each would be ${gb(f * SAMPLES_PER_BATCH * collects(r.rawMs) * perSampleOld)}`,
    );
    out("");
    legacy.close();
    sqlite.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
