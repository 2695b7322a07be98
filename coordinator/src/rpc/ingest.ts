/**
 * Storing report batches exactly once per (agent, sequence), whatever the agent retries:
 * events with the time they arrived, the service inventory, metric samples packed into one
 * frame per batch, and the dependency graph's edges with a count per hour.
 */
import type { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { sql } from "drizzle-orm";
import type { Bus, ServiceChange, StoredEvent, StoredSample } from "../store/bus.js";
import type { Store } from "../store/db.js";
import { labelsKey, packSamples } from "../store/frames.js";
import { batches, events, metricFrames, metricSeries, services, topologyEdgeHours, topologyEdges } from "../store/schema.js";
import { writeStamp } from "../store/stamp.js";

const SUBJECT_KINDS: Record<number, string> = { 1: "agent", 2: "service", 3: "process", 4: "host" };
const SERVICE = 2;
const HOUR_MS = 3_600_000;
/** A series' last-seen time is written at most this often (it ages series out, nothing finer). */
export const SERIES_TOUCH_MS = 10 * 60_000;
/**
 * A known edge's last-seen time and counts are written at most this often, and whenever its
 * hour changes: an agent reports the same connections every collect, and one write per edge
 * per collect was most of what a report cost. At worst a crash loses this much of the counts.
 */
export const EDGE_WRITE_EVERY_MS = 60_000;

export interface Ingest {
  /** Stores the batches not seen before; returns every sequence now stored (to acknowledge). */
  (agentName: string, incoming: readonly meshV1.Batch[], now: number): number[];
  /** Writes the edge counts held back (see EDGE_WRITE_EVERY_MS); the coordinator calls it as it stops. */
  flush(): void;
}

/** A known edge, and what was seen of it since it was last written. */
interface HeldEdge {
  id: number;
  writtenAt: number;
  hour: number;
  first: number;
  last: number;
  observations: number;
}

const p = sql.placeholder;

/** `listening` as service.observed carries it: "0.0.0.0:5432,[::]:5432". */
const splitList = (text: string | undefined) => (text ? text.split(",").filter(Boolean) : undefined);

/**
 * What an event says of whether a process of a service runs: its last process exited (the
 * passive collector counts those `remaining`), or one started, restarted or was seen.
 */
function runningChange(event: meshV1.Event): { key: string; stopped: boolean } | undefined {
  const serviceKey = event.attributes.serviceKey;
  if (event.kind === "process.exited")
    return serviceKey && event.attributes.remaining === "0" ? { key: serviceKey, stopped: true } : undefined;
  if (event.kind === "process.started") return serviceKey ? { key: serviceKey, stopped: false } : undefined;
  if ((event.kind === "process.restarted" || event.kind === "service.observed") && event.subject)
    return { key: event.subject.id, stopped: false };
  return undefined;
}

/**
 * Prepares the statements once (Report is the hottest path of a busy coordinator) and
 * returns the function that stores the batches not seen before, returning every
 * sequence now stored (to acknowledge). What was stored is announced on `bus` after commit.
 */
export function prepareIngest(db: Store, bus?: Bus): Ingest {
  const insertBatch = db
    .insert(batches)
    .values({ agentName: p("agent"), sequence: p("sequence"), receivedAt: p("at"), droppedBefore: p("dropped") })
    .onConflictDoNothing()
    .prepare();
  const insertEvent = db
    .insert(events)
    .values({
      agentName: p("agent"),
      sequence: p("sequence"),
      position: p("position"),
      kind: p("kind"),
      time: p("time"),
      receivedAt: p("at"),
      subjectKind: p("subjectKind"),
      subjectId: p("subjectId"),
      subjectName: p("subjectName"),
      attributes: p("attributes"),
      evidence: p("evidence"),
      source: p("source"),
    })
    .returning({ id: events.id })
    .prepare();
  // The service inventory: what a collector observed, the SDK's word winning over a passive guess.
  const observeService = db
    .insert(services)
    .values({
      agentName: p("agent"),
      key: p("key"),
      name: p("name"),
      version: p("version"),
      source: p("source"),
      details: p("details"),
      executable: p("executable"),
      firstSeenAt: p("time"),
      lastSeenAt: p("time"),
      updatedAt: p("at"),
    })
    .onConflictDoUpdate({
      target: [services.agentName, services.key],
      set: {
        updatedAt: sql`excluded.updated_at`,
        name: sql`CASE WHEN excluded.source = 'sdk' OR ${services.source} != 'sdk' THEN excluded.name ELSE ${services.name} END`,
        version: sql`coalesce(excluded.version, ${services.version})`,
        source: sql`CASE WHEN ${services.source} = 'sdk' THEN 'sdk' ELSE excluded.source END`,
        details: sql`CASE WHEN excluded.source = 'sdk' OR ${services.source} != 'sdk' THEN excluded.details ELSE ${services.details} END`,
        executable: sql`coalesce(excluded.executable, ${services.executable})`,
        lastSeenAt: sql`max(${services.lastSeenAt}, excluded.last_seen_at)`,
      },
    })
    .prepare();
  const serviceHealth = db
    .update(services)
    .set({ health: sql`${p("health")}`, lastSeenAt: sql`max(${services.lastSeenAt}, ${p("time")})`, updatedAt: sql`${p("at")}` })
    .where(sql`${services.agentName} = ${p("agent")} AND ${services.key} = ${p("key")}`)
    .prepare();
  const listeningOf = db
    .select({ listening: services.listening })
    .from(services)
    .where(sql`${services.agentName} = ${p("agent")} AND ${services.key} = ${p("key")}`)
    .prepare();
  const setListening = db
    .update(services)
    .set({ listening: sql`${p("listening")}`, lastSeenAt: sql`max(${services.lastSeenAt}, ${p("time")})`, updatedAt: sql`${p("at")}` })
    .where(sql`${services.agentName} = ${p("agent")} AND ${services.key} = ${p("key")}`)
    .prepare();
  // Whether a process of it runs: the passive collector says when the last one exits, and any start or sighting ends that.
  const serviceStopped = db
    .update(services)
    .set({ stoppedAt: sql`${p("time")}`, updatedAt: sql`${p("at")}` })
    .where(sql`${services.agentName} = ${p("agent")} AND ${services.key} = ${p("key")} AND ${services.stoppedAt} IS NULL`)
    .prepare();
  const serviceRunning = db
    .update(services)
    .set({ stoppedAt: null, updatedAt: sql`${p("at")}` })
    .where(sql`${services.agentName} = ${p("agent")} AND ${services.key} = ${p("key")} AND ${services.stoppedAt} <= ${p("time")}`)
    .prepare();
  const seriesId = db
    .select({ id: metricSeries.id })
    .from(metricSeries)
    .where(
      sql`${metricSeries.agentName} = ${p("agent")} AND ${metricSeries.subjectId} = ${p("subjectId")} AND ${metricSeries.name} = ${p("name")} AND ${metricSeries.labels} = ${p("labels")}`,
    )
    .prepare();
  const insertSeries = db
    .insert(metricSeries)
    .values({
      agentName: p("agent"),
      name: p("name"),
      subjectKind: p("subjectKind"),
      subjectId: p("subjectId"),
      labels: p("labels"),
      source: p("source"),
      firstSeenAt: p("time"),
      lastSeenAt: p("time"),
    })
    .returning({ id: metricSeries.id })
    .prepare();
  const touchSeries = db
    .update(metricSeries)
    .set({ lastSeenAt: sql`max(${metricSeries.lastSeenAt}, ${p("time")})` })
    .where(sql`${metricSeries.id} = ${p("id")}`)
    .prepare();
  // A service's metrics say it is still there: its last-seen time follows theirs (so it is not aged out).
  const touchService = db
    .update(services)
    .set({ lastSeenAt: sql`max(${services.lastSeenAt}, ${p("time")})`, updatedAt: sql`${p("at")}` })
    .where(sql`${services.agentName} = ${p("agent")} AND ${services.key} = ${p("key")}`)
    .prepare();
  const insertFrame = db
    .insert(metricFrames)
    .values({ agentName: p("agent"), startTime: p("start"), endTime: p("end"), samples: p("samples"), data: p("data") })
    .prepare();
  const upsertEdge = db
    .insert(topologyEdges)
    .values({
      agentName: p("agent"),
      fromService: p("from"),
      toAddress: p("address"),
      toPort: p("port"),
      protocol: p("protocol"),
      firstSeenAt: p("first"),
      lastSeenAt: p("last"),
      observations: p("observations"),
      updatedAt: p("at"),
    })
    .onConflictDoUpdate({
      target: [topologyEdges.agentName, topologyEdges.fromService, topologyEdges.toAddress, topologyEdges.toPort, topologyEdges.protocol],
      set: {
        firstSeenAt: sql`min(${topologyEdges.firstSeenAt}, excluded.first_seen_at)`,
        lastSeenAt: sql`max(${topologyEdges.lastSeenAt}, excluded.last_seen_at)`,
        observations: sql`${topologyEdges.observations} + excluded.observations`,
        updatedAt: sql`excluded.updated_at`,
      },
    })
    .returning({ id: topologyEdges.id })
    .prepare();
  const countEdgeHour = db
    .insert(topologyEdgeHours)
    .values({ edgeId: p("edge"), hour: p("hour"), observations: p("observations") })
    .onConflictDoUpdate({
      target: [topologyEdgeHours.edgeId, topologyEdgeHours.hour],
      set: { observations: sql`${topologyEdgeHours.observations} + excluded.observations` },
    })
    .prepare();

  const touchEdge = db
    .update(topologyEdges)
    .set({
      firstSeenAt: sql`min(${topologyEdges.firstSeenAt}, ${p("first")})`,
      lastSeenAt: sql`max(${topologyEdges.lastSeenAt}, ${p("last")})`,
      observations: sql`${topologyEdges.observations} + ${p("observations")}`,
      updatedAt: sql`${p("at")}`,
    })
    .where(sql`${topologyEdges.id} = ${p("id")}`)
    .prepare();

  /** Edges by agent and identity, with what is held back of each. */
  const edgeCache = new Map<string, HeldEdge>();
  /** Writes what is held back of an edge; false when the edge is gone (aged out meanwhile). */
  const writeEdge = (edge: HeldEdge, at: number): boolean => {
    if (edge.observations === 0) return true;
    if (touchEdge.run({ id: edge.id, first: edge.first, last: edge.last, observations: edge.observations, at }).changes === 0) return false;
    countEdgeHour.run({ edge: edge.id, hour: edge.hour, observations: edge.observations });
    edge.observations = 0;
    edge.writtenAt = edge.last;
    return true;
  };

  /** Series ids by agent, subject, name and labels; with when each was last written as seen. */
  const seriesCache = new Map<string, { id: number; touched: number }>();
  const seriesFor = (agent: string, metric: meshV1.MetricSample, time: number): number => {
    const subjectId = metric.subject?.id ?? "";
    const touch = (id: number) => {
      touchSeries.run({ id, time });
      if (metric.subject?.kind === SERVICE) touchService.run({ agent, key: subjectId, time, at: writeStamp() });
    };
    const labels = labelsKey(metric.labels);
    const key = `${agent}\u0000${subjectId}\u0000${metric.name}\u0000${labels}`;
    const cached = seriesCache.get(key);
    if (cached) {
      if (time - cached.touched > SERIES_TOUCH_MS) {
        touch(cached.id);
        cached.touched = time;
      }
      return cached.id;
    }
    const params = { agent, subjectId, name: metric.name, labels };
    let id = seriesId.get(params)?.id;
    if (id === undefined) {
      id = insertSeries.get({
        ...params,
        subjectKind: SUBJECT_KINDS[metric.subject?.kind ?? 0] ?? "unknown",
        source: metric.source || null,
        time,
      })?.id as number;
    } else touch(id);
    seriesCache.set(key, { id, touched: time });
    return id;
  };

  type Changed = { key: string; name: string; change: ServiceChange };

  /** A batch's events, and what they say of the service inventory. */
  const storeEvents = (agent: string, batch: meshV1.Batch, now: number, stamp: number, stored: StoredEvent[], changed: Changed[]) => {
    batch.events.forEach((event, position) => {
      const subject = event.subject;
      const subjectKind = SUBJECT_KINDS[subject?.kind ?? 0] ?? "unknown";
      const row = insertEvent.get({
        agent,
        sequence: batch.sequence,
        position,
        kind: event.kind,
        time: event.timeUnixMs,
        at: now,
        subjectKind,
        subjectId: subject?.id ?? "",
        subjectName: subject?.name || null,
        attributes: JSON.stringify(event.attributes),
        evidence: event.evidenceJson || "{}",
        source: event.source || null,
      });
      stored.push({
        id: row?.id as number,
        agent,
        kind: event.kind,
        time: event.timeUnixMs,
        subject: { kind: subjectKind, id: subject?.id ?? "", name: subject?.name || null },
        attributes: event.attributes,
        source: event.source || null,
      });
      if (!subject) return;
      const where = { agent, key: subject.id, time: event.timeUnixMs, at: stamp };
      const running = runningChange(event);
      if (running) {
        const key = { agent, key: running.key, time: event.timeUnixMs, at: stamp };
        const moved = running.stopped ? serviceStopped.run(key) : serviceRunning.run(key);
        if (moved.changes > 0)
          changed.push({
            key: running.key,
            name: event.attributes.service || subject.name || running.key,
            change: "running",
          });
      }
      if (event.kind === "service.observed") {
        observeService.run({
          ...where,
          name: subject.name || subject.id,
          version: event.attributes.version || null,
          source: event.attributes.source === "sdk" ? "sdk" : "passive",
          details: JSON.stringify(event.attributes),
          executable: event.attributes.exe || null,
        });
        const listening = splitList(event.attributes.listening);
        if (listening) setListening.run({ ...where, listening: JSON.stringify(listening) });
        changed.push({ key: subject.id, name: subject.name || subject.id, change: "observed" });
      } else if (event.kind === "service.health_changed" && event.attributes.to) {
        serviceHealth.run({ ...where, health: event.attributes.to });
        changed.push({ key: subject.id, name: subject.name || subject.id, change: "health" });
      } else if ((event.kind === "port.opened" || event.kind === "port.closed") && event.attributes.address) {
        const current = listeningOf.get({ agent, key: subject.id });
        if (!current) return; // a service the inventory does not know (yet): its next service.observed says it all
        const set = new Set(current.listening);
        if (event.kind === "port.opened") set.add(event.attributes.address);
        else set.delete(event.attributes.address);
        setListening.run({ ...where, listening: JSON.stringify([...set].sort()) });
        changed.push({ key: subject.id, name: subject.name || subject.id, change: "listening" });
      }
    });
  };

  /** A batch's samples, packed into one frame; returns how many. Followers of the bus get them in `announced`. */
  const storeSamples = (agent: string, batch: meshV1.Batch, announced: StoredSample[] | undefined): number => {
    if (batch.metrics.length === 0) return 0;
    if (announced)
      for (const m of batch.metrics)
        announced.push({
          subjectKind: SUBJECT_KINDS[m.subject?.kind ?? 0] ?? "unknown",
          subjectId: m.subject?.id ?? "",
          name: m.name,
          labels: labelsKey(m.labels),
          time: m.timeUnixMs,
          value: m.value,
        });
    let start = Number.POSITIVE_INFINITY;
    let end = Number.NEGATIVE_INFINITY;
    for (const m of batch.metrics) {
      if (m.timeUnixMs < start) start = m.timeUnixMs;
      if (m.timeUnixMs > end) end = m.timeUnixMs;
    }
    const packed = batch.metrics.map((m) => ({ seriesId: seriesFor(agent, m, m.timeUnixMs), time: m.timeUnixMs, value: m.value }));
    insertFrame.run({ agent, start, end, samples: packed.length, data: packSamples(packed, start) });
    return packed.length;
  };

  /** A batch's connections, as edges of the graph. */
  const storeEdges = (agent: string, batch: meshV1.Batch, now: number, stamp: number) => {
    // One upsert per distinct edge in the batch, however many sockets it had open.
    const edges = new Map<string, { from: string; address: string; port: number; protocol: string; first: number; last: number }>();
    for (const connection of batch.connections) {
      const seenAt = connection.observedAtUnixMs || now;
      const from = connection.subject?.id || connection.processName || `pid:${connection.pid}`;
      const protocol = connection.protocol || "tcp";
      const key = `${from}\u0000${connection.remoteAddress}\u0000${connection.remotePort}\u0000${protocol}`;
      const edge = edges.get(key);
      if (edge) {
        edge.first = Math.min(edge.first, seenAt);
        edge.last = Math.max(edge.last, seenAt);
      } else
        edges.set(key, {
          from,
          address: connection.remoteAddress,
          port: connection.remotePort,
          protocol,
          first: seenAt,
          last: seenAt,
        });
    }
    // Many sockets of one collect are one observation of the edge: counts say how often it was seen.
    for (const [key, edge] of edges) {
      const hour = Math.floor(edge.last / HOUR_MS) * HOUR_MS;
      const cacheKey = `${agent}\u0000${key}`;
      const held = edgeCache.get(cacheKey);
      if (held && held.hour === hour) {
        held.first = Math.min(held.first, edge.first);
        held.last = Math.max(held.last, edge.last);
        held.observations++;
        if (held.last - held.writtenAt < EDGE_WRITE_EVERY_MS || writeEdge(held, stamp)) continue;
      } else if (held && writeEdge(held, stamp)) {
        // A new hour: what was held belongs to the last one, written just now; this one starts afresh.
        Object.assign(held, { hour, first: edge.first, last: edge.last, observations: 1 });
        if (writeEdge(held, stamp)) continue;
      }
      // New, or gone from the store since: upsert it.
      const row = upsertEdge.get({ agent, ...edge, observations: 1, at: stamp });
      if (!row) continue;
      countEdgeHour.run({ edge: row.id, hour, observations: 1 });
      edgeCache.set(cacheKey, { id: row.id, writtenAt: edge.last, hour, first: edge.first, last: edge.last, observations: 0 });
    }
  };

  const store = db.$client.transaction((agent: string, incoming: readonly meshV1.Batch[], now: number) => {
    const acked: number[] = [];
    const stored: number[] = [];
    const stamp = writeStamp();
    const storedEvents: StoredEvent[] = [];
    const changed: Changed[] = [];
    const announced: StoredSample[] | undefined = bus ? [] : undefined;
    let samples = 0;
    let connections = 0;
    for (const batch of incoming) {
      const inserted = insertBatch.run({ agent, sequence: batch.sequence, at: now, dropped: batch.droppedBefore });
      acked.push(batch.sequence);
      if (inserted.changes === 0) continue; // a retry: already stored
      stored.push(batch.sequence);
      storeEvents(agent, batch, now, stamp, storedEvents, changed);
      samples += storeSamples(agent, batch, announced);
      storeEdges(agent, batch, now, stamp);
      connections += batch.connections.length;
    }
    return { acked, stored, storedEvents, changed, samples, connections, announced: announced ?? [] };
  });

  const ingest = (agentName: string, incoming: readonly meshV1.Batch[], now: number): number[] => {
    let result: ReturnType<typeof store>;
    try {
      result = store(agentName, incoming, now);
    } catch (error) {
      // They may name rows the rolled-back transaction had created.
      seriesCache.clear();
      edgeCache.clear();
      throw error;
    }
    if (bus && result.stored.length > 0) {
      bus.emit("batches.stored", {
        agent: agentName,
        receivedAt: now,
        sequences: result.stored,
        events: result.storedEvents,
        samples: result.samples,
        metrics: result.announced,
        connections: result.connections,
      });
      for (const c of result.changed) bus.emit("service.changed", { agent: agentName, ...c });
    }
    return result.acked;
  };
  const flush = db.$client.transaction(() => {
    const at = writeStamp();
    for (const [key, edge] of edgeCache) if (!writeEdge(edge, at)) edgeCache.delete(key);
  });
  return Object.assign(ingest, { flush: () => flush() });
}
