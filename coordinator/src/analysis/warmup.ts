/**
 * What the engine reads from the store: at start, the recent past (so a restart of the
 * coordinator does not forget a crash loop or reopen its findings), and as it runs, the
 * things the bus does not carry — agents' health and plugins, and the resolved graph.
 * All reads, on the worker's own read-only connection.
 */
import type { Finding } from "@coral-mesh/sdk-proto";
import { and, eq, gte, inArray, sql } from "drizzle-orm";
import type { Store } from "../store/db.js";
import { unpackAggregates } from "../store/frames.js";
import type { ReadModel } from "../store/read-model.js";
import { agents, events, findings, metricRollups, metricSeries, services } from "../store/schema.js";
import type { Engine } from "./engine.js";
import { type Baseline, EVENTS_KEEP_MS } from "./model.js";
import { ANALYSED_METRICS, type InputAgent, type InputDependency } from "./state.js";
import { mad, median } from "./stats.js";

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
/** Minutes of metric history read back at start. */
const WARM_METRICS_MS = 30 * MINUTE_MS;
/** Events read back at start, at most. */
const WARM_EVENTS = 200_000;
/** The kinds of events the detectors read. */
const ANALYSED_EVENTS = /^(process|service|port|agent|plugin)\./;

interface PluginJson {
  name: string;
  state: string;
  lastError?: string | null;
}

export function readAgents(db: Store): InputAgent[] {
  return db
    .select({
      name: agents.name,
      health: agents.health,
      lastHeartbeat: agents.lastHeartbeatAt,
      plugins: agents.plugins,
      clockOffsetMs: agents.clockOffsetMs,
    })
    .from(agents)
    .all()
    .map((a) => ({
      ...a,
      plugins: (JSON.parse(a.plugins || "[]") as PluginJson[]).map((p) => ({
        name: p.name,
        state: p.state,
        ...(p.lastError ? { error: p.lastError } : {}),
      })),
    }));
}

/** Service-to-service edges of the resolved graph (externals and Coral's own traffic left out). */
export function readDependencies(model: ReadModel): InputDependency[] {
  const inv = model.inventory();
  const out: InputDependency[] = [];
  for (const edge of inv.edges) {
    const to = inv.resolve(edge);
    if (to.kind !== "service") continue;
    const from = inv.nameOf(edge.agentName, edge.fromService);
    if (from) out.push({ from, to: to.name, lastSeen: edge.lastSeenAt });
  }
  return out;
}

/** The store's open findings, with the identity that keeps them the same finding. */
export function readOpenFindings(db: Store): Array<{ identity: string; finding: Finding }> {
  return db
    .select()
    .from(findings)
    .where(eq(findings.state, "open"))
    .all()
    .map((row) => ({
      identity: row.identity,
      finding: {
        id: row.id,
        kind: row.kind as Finding["kind"],
        severity: row.severity as Finding["severity"],
        state: "open",
        service: row.service,
        agent: row.agentName,
        rootCause: row.rootCause as Finding["rootCause"],
        summary: row.summary,
        confidence: row.confidence,
        evidence: row.evidence as Finding["evidence"],
        recommendation: row.recommendation as Finding["recommendation"],
        openedAt: row.openedAt,
        updatedAt: row.updatedAt,
        resolvedAt: null,
        since: row.since,
      },
    }));
}

/**
 * Fills a new engine from the store: agents, the inventory, the graph, the last hours of
 * events and the last half hour of metrics (as minute means), and its open findings. Returns
 * the highest event id read: events the bus brings up to it are already known.
 */
export function warmUp(db: Store, engine: Engine, model: ReadModel, now: number): number {
  const { state } = engine;
  for (const a of readAgents(db)) state.applyAgent(a, now);
  for (const row of db.select().from(services).all())
    state.applyInstance({
      agent: row.agentName,
      key: row.key,
      name: row.name,
      version: row.version,
      source: row.source,
      health: row.health,
      listening: row.listening,
      executable: row.executable,
      firstSeen: row.firstSeenAt,
      lastSeen: row.lastSeenAt,
    });
  state.applyDependencies(readDependencies(model), now);

  let lastId = 0;
  const rows = db
    .select()
    .from(events)
    .where(gte(events.time, now - EVENTS_KEEP_MS))
    .orderBy(events.id)
    .limit(WARM_EVENTS)
    .all();
  for (const row of rows) {
    lastId = Math.max(lastId, row.id);
    if (!ANALYSED_EVENTS.test(row.kind)) continue;
    state.applyEvent({
      id: row.id,
      agent: row.agentName,
      kind: row.kind,
      time: row.time,
      subject: { kind: row.subjectKind, id: row.subjectId, name: row.subjectName },
      attributes: JSON.parse(row.attributes) as Record<string, string>,
      source: row.source,
    });
  }

  // Minute means of the analysed series: enough for trends and saturation windows to hold across a restart.
  const series = new Map(
    db
      .select()
      .from(metricSeries)
      .where(and(inArray(metricSeries.name, [...ANALYSED_METRICS]), gte(metricSeries.lastSeenAt, now - WARM_METRICS_MS)))
      .all()
      .map((s) => [s.id, s]),
  );
  if (series.size) {
    const minutes = db
      .select()
      .from(metricRollups)
      .where(and(eq(metricRollups.resolutionMs, MINUTE_MS), gte(metricRollups.bucketStart, now - WARM_METRICS_MS)))
      .orderBy(metricRollups.bucketStart)
      .all();
    for (const m of minutes) {
      unpackAggregates(m.data, (id, agg) => {
        const s = series.get(id);
        if (!s || agg.count === 0) return;
        const time = m.bucketStart + MINUTE_MS / 2;
        state.applySample(
          s.agentName,
          { subjectKind: s.subjectKind, subjectId: s.subjectId, name: s.name, labels: s.labels, time, value: agg.sum / agg.count },
          time,
        );
      });
    }
  }
  engine.restore(readOpenFindings(db), now);
  return lastId;
}

/**
 * Baselines from the hourly rollups: the median and MAD of a series' hourly means over the last
 * four weeks, by hour of the week once a week of them exists. Read per agent and worked out for
 * all its series at once, for the hour asked about; only those results are kept (until the hour
 * turns), for up to BASELINE_AGENTS agents. The resource-spike detector asks only about a value
 * already far outside its own recent normal, so few agents are read in an hour.
 */
const BASELINE_AGENTS = 4_096;
const BASELINE_DAYS = 28;

export function rollupBaselines(db: Store): (agent: string, key: string, metric: string, at: number) => Baseline | undefined {
  const cache = new Map<string, { hour: number; results: Map<string, Baseline> }>();
  const seriesOf = db
    .select({ id: metricSeries.id, subjectId: metricSeries.subjectId, name: metricSeries.name })
    .from(metricSeries)
    .where(
      sql`${metricSeries.agentName} = ${sql.placeholder("agent")} AND ${metricSeries.labels} = '{}' AND ${metricSeries.name} IN ('service.cpu.cores', 'service.memory.rss_bytes')`,
    )
    .prepare();
  const hoursOf = db
    .select({ bucketStart: metricRollups.bucketStart, data: metricRollups.data })
    .from(metricRollups)
    .where(
      sql`${metricRollups.resolutionMs} = ${HOUR_MS} AND ${metricRollups.agentName} = ${sql.placeholder("agent")} AND ${metricRollups.bucketStart} >= ${sql.placeholder("since")}`,
    )
    .prepare();
  const week = 7 * 24 * HOUR_MS;
  const hourOfWeek = (t: number) => Math.floor((t % week) / HOUR_MS);
  const load = (agent: string, at: number): Map<string, Baseline> => {
    const ids = new Map(seriesOf.all({ agent }).map((s) => [s.id, `${s.subjectId}\u0000${s.name}`]));
    const hours = new Map<string, Array<{ start: number; mean: number }>>();
    for (const row of hoursOf.all({ agent, since: at - BASELINE_DAYS * 24 * HOUR_MS }))
      unpackAggregates(row.data, (id, agg) => {
        const name = ids.get(id);
        if (!name || agg.count === 0) return;
        const list = hours.get(name) ?? [];
        list.push({ start: row.bucketStart, mean: agg.sum / agg.count });
        hours.set(name, list);
      });
    const results = new Map<string, Baseline>();
    const target = hourOfWeek(at);
    for (const [name, points] of hours) {
      if (points.length < 24) continue;
      const span = (points[points.length - 1]?.start ?? 0) - (points[0]?.start ?? 0);
      let values = points.map((p) => p.mean);
      let by: Baseline["by"] = "all";
      if (span >= week) {
        const near = points.filter((p) => {
          const d = Math.abs(hourOfWeek(p.start) - target);
          return Math.min(d, 168 - d) <= 1;
        });
        if (near.length >= 3) {
          values = near.map((p) => p.mean);
          by = "hour-of-week";
        }
      }
      const centre = median(values);
      results.set(name, { median: centre, mad: mad(values, centre), points: values.length, by });
    }
    return results;
  };
  return (agent, key, metric, at) => {
    const hour = Math.floor(at / HOUR_MS);
    let entry = cache.get(agent);
    if (!entry || entry.hour !== hour) {
      entry = { hour, results: load(agent, at) };
      cache.delete(agent);
      cache.set(agent, entry);
      if (cache.size > BASELINE_AGENTS) cache.delete(cache.keys().next().value as string);
    }
    return entry.results.get(`${key}\u0000${metric}`);
  };
}
