/**
 * The store's named queries: what the API, the CLI and the analysis read. Each answers a
 * contract of `@coral-mesh/sdk-proto` (model.ts), so every reader sees the same shapes.
 */
import {
  CoralError,
  type EventsResponse,
  type EventView,
  type MetricPoint,
  type MetricResolution,
  type MetricSeries,
  type MetricsResponse,
  type ServiceInstance,
  type ServiceSummary,
  type ServiceView,
  type TopologyEdge,
  type TopologyNode,
  type TopologyResponse,
} from "@coral-mesh/sdk-proto";
import { and, desc, eq, gte, inArray, lt, lte } from "drizzle-orm";
import type { Store } from "./db.js";
import { unpackAggregates, unpackSamples } from "./frames.js";
import { type InstanceRow, type Inventory, readModel } from "./read-model.js";
import type { Resolution } from "./resolve.js";
import { HOUR_MS, MINUTE_MS } from "./rollups.js";
import { agents, events, metricFrames, metricRollups, metricSeries, services, topologyEdgeHours } from "./schema.js";

function instanceView(row: InstanceRow): ServiceInstance {
  return {
    agent: row.agentName,
    key: row.key,
    version: row.version,
    source: row.source === "sdk" ? "sdk" : "passive",
    health: row.health,
    listening: row.listening,
    executable: row.executable,
    firstSeen: row.firstSeenAt,
    lastSeen: row.lastSeenAt,
    stoppedAt: row.stoppedAt,
  };
}

const inventory = (db: Store): Inventory => readModel(db).inventory();

interface ResolvedEdge {
  from: string;
  to: Exclude<Resolution, { kind: "coral" }>;
  agent: string;
  address: string;
  port: number;
  protocol: string;
  firstSeen: number;
  lastSeen: number;
  edgeId: number;
}

function resolvedEdges(since: number, until: number, inv: Inventory): ResolvedEdge[] {
  const resolved: ResolvedEdge[] = [];
  for (const e of inv.edges) {
    if (e.lastSeenAt < since || e.firstSeenAt > until) continue;
    const to = inv.resolve(e);
    if (to.kind === "coral") continue;
    resolved.push({
      // A connection's subject is its service's key on that agent; one the inventory does not know keeps its key.
      from: inv.nameOf(e.agentName, e.fromService) ?? e.fromService,
      to,
      agent: e.agentName,
      address: e.toAddress,
      port: e.toPort,
      protocol: e.protocol,
      firstSeen: e.firstSeenAt,
      lastSeen: e.lastSeenAt,
      edgeId: e.id,
    });
  }
  return resolved;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The dependency graph of services (and externals) seen within [since, until]. */
export function topology(db: Store, window: { since: number; until: number }): TopologyResponse {
  const inv = inventory(db);
  const edges = resolvedEdges(window.since, window.until, inv);
  const hours = new Map<number, Array<{ hour: number; observations: number }>>();
  if (edges.length > 0) {
    const rows = db
      .select()
      .from(topologyEdgeHours)
      .where(and(gte(topologyEdgeHours.hour, Math.floor(window.since / HOUR_MS) * HOUR_MS), lte(topologyEdgeHours.hour, window.until)))
      .orderBy(topologyEdgeHours.hour)
      .all();
    for (const row of rows) {
      const list = hours.get(row.edgeId) ?? [];
      list.push({ hour: row.hour, observations: row.observations });
      hours.set(row.edgeId, list);
    }
  }

  const nodes = new Map<string, TopologyNode>();
  const addNode = (kind: "service" | "external", name: string) => {
    const id = `${kind}:${name}`;
    if (!nodes.has(id)) nodes.set(id, { id, kind, name, agents: kind === "service" ? [...inv.agentsOf(name)] : [] });
    return id;
  };

  const merged = new Map<string, TopologyEdge>();
  /** Per merged edge: its hours by start, and the (agent, address) pairs already in `via`. */
  const hoursOf = new Map<TopologyEdge, Map<number, { hour: number; observations: number }>>();
  const viaOf = new Map<TopologyEdge, Set<string>>();
  for (const e of edges) {
    const from = addNode("service", e.from);
    const to = addNode(e.to.kind, e.to.name);
    const key = `${from}\u0000${to}\u0000${e.port}\u0000${e.protocol}`;
    const edgeHours = hours.get(e.edgeId) ?? [];
    const edge = merged.get(key) ?? {
      from,
      to,
      port: e.port,
      protocol: e.protocol,
      firstSeen: e.firstSeen,
      lastSeen: e.lastSeen,
      observations: 0,
      hours: [],
      via: [],
    };
    edge.firstSeen = Math.min(edge.firstSeen, e.firstSeen);
    edge.lastSeen = Math.max(edge.lastSeen, e.lastSeen);
    const byHour = hoursOf.get(edge) ?? new Map();
    for (const h of edgeHours) {
      edge.observations += h.observations;
      const existing = byHour.get(h.hour);
      if (existing) existing.observations += h.observations;
      else {
        const copy = { ...h };
        byHour.set(h.hour, copy);
        edge.hours.push(copy);
      }
    }
    hoursOf.set(edge, byHour);
    const via = viaOf.get(edge) ?? new Set<string>();
    const viaKey = `${e.agent}\u0000${e.address}`;
    if (!via.has(viaKey)) {
      via.add(viaKey);
      edge.via.push({ agent: e.agent, address: e.address });
    }
    viaOf.set(edge, via);
    merged.set(key, edge);
  }
  for (const edge of merged.values()) {
    edge.hours.sort((a, b) => a.hour - b.hour);
    edge.via.sort((a, b) => compare(a.agent, b.agent) || compare(a.address, b.address));
  }
  return {
    window: { from: window.since, to: window.until },
    nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)),
    edges: [...merged.values()].sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to) || a.port - b.port),
  };
}

/**
 * Every service across agents, summarised, with its dependencies and dependents (edges seen
 * since `since`); with `instances`, each one's instances too. `only` answers one service.
 */
export function listServices(
  db: Store,
  since: number,
  now: number,
  options: { instances?: boolean; only?: string } = {},
): ServiceSummary[] {
  const inv = inventory(db);
  const byName = new Map<string, InstanceRow[]>();
  for (const i of inv.instances) {
    if (options.only !== undefined && i.name !== options.only) continue;
    const list = byName.get(i.name);
    if (list) list.push(i);
    else byName.set(i.name, [i]);
  }
  type Ref = ServiceSummary["dependencies"][number];
  const dependencies = new Map<string, Map<string, Ref>>();
  const dependents = new Map<string, Map<string, Ref>>();
  const add = (into: typeof dependencies, service: string, ref: Ref) => {
    if (!byName.has(service)) return;
    const refs = into.get(service) ?? new Map();
    const key = `${ref.kind}\u0000${ref.name}\u0000${ref.port}\u0000${ref.protocol}`;
    const existing = refs.get(key);
    if (!existing || existing.lastSeen < ref.lastSeen) refs.set(key, ref);
    into.set(service, refs);
  };
  for (const e of resolvedEdges(since, now, inv)) {
    add(dependencies, e.from, { kind: e.to.kind, name: e.to.name, port: e.port, protocol: e.protocol, lastSeen: e.lastSeen });
    if (e.to.kind === "service")
      add(dependents, e.to.name, { kind: "service", name: e.from, port: e.port, protocol: e.protocol, lastSeen: e.lastSeen });
  }
  const sorted = <T extends { name: string; port: number }>(refs: Map<string, T> | undefined) =>
    [...(refs?.values() ?? [])].sort((a, b) => a.name.localeCompare(b.name) || a.port - b.port);
  return [...byName]
    .map(([name, rows]): ServiceSummary => {
      const versions = new Set<string>();
      const ports = new Set<number>();
      let sdk = 0;
      let running = 0;
      let reporting = 0;
      let failing = 0;
      let firstSeen = Number.POSITIVE_INFINITY;
      let lastSeen = Number.NEGATIVE_INFINITY;
      for (const i of rows) {
        if (i.version) versions.add(i.version);
        for (const socket of i.listening) {
          const port = Number(socket.slice(socket.lastIndexOf(":") + 1));
          if (Number.isInteger(port)) ports.add(port);
        }
        if (i.source === "sdk") {
          sdk++;
          if (i.health !== null) reporting++;
          if (i.health !== null && i.health !== "serving") failing++;
        }
        if (i.stoppedAt === null) running++;
        if (i.firstSeenAt < firstSeen) firstSeen = i.firstSeenAt;
        if (i.lastSeenAt > lastSeen) lastSeen = i.lastSeenAt;
      }
      return {
        name,
        instanceCount: rows.length,
        runningCount: running,
        agents: [...inv.agentsOf(name)],
        versions: [...versions].sort(),
        ports: [...ports].sort((a, b) => a - b),
        source: sdk > 0 ? "sdk" : "passive",
        health: reporting === 0 ? "unknown" : failing > 0 ? "not_serving" : "serving",
        dependencies: sorted(dependencies.get(name)),
        dependents: sorted(dependents.get(name)),
        firstSeen,
        lastSeen,
        ...(options.instances
          ? { instances: rows.map(instanceView).sort((a, b) => a.agent.localeCompare(b.agent) || a.key.localeCompare(b.key)) }
          : {}),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** One service with every instance, or `service_not_found`. */
export function getService(db: Store, name: string, since: number, now: number): ServiceView {
  const [service] = listServices(db, since, now, { instances: true, only: name });
  if (!service?.instances) throw new CoralError("service_not_found", `No service named ${name}; \`coral services\` lists them.`);
  return { ...service, instances: service.instances };
}

/** Raw samples for spans up to two hours, minute rollups up to three days, hour rollups beyond. */
export function resolutionFor(spanMs: number): MetricResolution {
  if (spanMs <= 2 * HOUR_MS) return "raw";
  if (spanMs <= 72 * HOUR_MS) return "1m";
  return "1h";
}

/** One service's metric series across its instances, within [since, until]. */
export function serviceMetrics(
  db: Store,
  service: string,
  query: { metric?: string; since: number; until: number; resolution?: MetricResolution },
): MetricsResponse {
  const instances = db.select({ agent: services.agentName, key: services.key }).from(services).where(eq(services.name, service)).all();
  if (instances.length === 0) {
    throw new CoralError("service_not_found", `No service named ${service}; \`coral services\` lists them.`);
  }
  const series = instances.flatMap((i) =>
    db
      .select()
      .from(metricSeries)
      .where(and(eq(metricSeries.agentName, i.agent), eq(metricSeries.subjectId, i.key)))
      .all(),
  );
  const names = [...new Set(series.map((s) => s.name))].sort();
  const wanted = query.metric ? series.filter((s) => s.name === query.metric) : series;
  const resolution = query.resolution ?? resolutionFor(query.until - query.since);
  const points = new Map<number, MetricPoint[]>(wanted.map((s) => [s.id, []]));
  for (const agent of new Set(wanted.map((s) => s.agentName))) {
    if (resolution === "raw") {
      const frames = db
        .select({ startTime: metricFrames.startTime, data: metricFrames.data })
        .from(metricFrames)
        .where(
          and(
            eq(metricFrames.agentName, agent),
            gte(metricFrames.startTime, query.since - MINUTE_MS),
            lte(metricFrames.startTime, query.until),
          ),
        )
        .orderBy(metricFrames.startTime)
        .all();
      for (const frame of frames) {
        unpackSamples(frame.data, frame.startTime, (id, t, value) => {
          if (t < query.since || t > query.until) return;
          points.get(id)?.push({ t, avg: value, min: value, max: value, count: 1 });
        });
      }
    } else {
      const unit = resolution === "1m" ? MINUTE_MS : HOUR_MS;
      const rows = db
        .select({ bucketStart: metricRollups.bucketStart, data: metricRollups.data })
        .from(metricRollups)
        .where(
          and(
            eq(metricRollups.resolutionMs, unit),
            eq(metricRollups.agentName, agent),
            gte(metricRollups.bucketStart, Math.floor(query.since / unit) * unit),
            lte(metricRollups.bucketStart, query.until),
          ),
        )
        .orderBy(metricRollups.bucketStart)
        .all();
      for (const row of rows) {
        unpackAggregates(row.data, (id, a) =>
          points.get(id)?.push({ t: row.bucketStart, avg: round(a.sum / a.count), min: a.min, max: a.max, count: a.count }),
        );
      }
    }
  }
  const out: MetricSeries[] = wanted
    .map((s) => ({
      agent: s.agentName,
      metric: s.name,
      subject: s.subjectId,
      labels: JSON.parse(s.labels) as Record<string, string>,
      source: s.source,
      points: (points.get(s.id) ?? []).sort((a, b) => a.t - b.t),
    }))
    .sort((a, b) => a.metric.localeCompare(b.metric) || a.agent.localeCompare(b.agent));
  return { service, window: { from: query.since, to: query.until }, resolution, metrics: names, series: out };
}

const round = (n: number) => Number(n.toPrecision(12));

/** Events, newest stored first, a page at a time: `before` is the previous page's `next`. */
export function listEvents(
  db: Store,
  query: {
    since: number;
    /** Only events at or before this time (the observer's clock, as `since`). */
    until?: number | undefined;
    before?: number | undefined;
    agent?: string | undefined;
    kind?: string | undefined;
    service?: string | undefined;
    limit: number;
  },
): EventsResponse {
  const conditions = [gte(events.time, query.since)];
  if (query.until !== undefined) conditions.push(lte(events.time, query.until));
  if (query.before !== undefined) conditions.push(lt(events.id, query.before));
  if (query.agent) conditions.push(eq(events.agentName, query.agent));
  if (query.kind) conditions.push(eq(events.kind, query.kind));
  if (query.service) conditions.push(eq(events.subjectName, query.service));
  const rows = db
    .select()
    .from(events)
    .where(and(...conditions))
    .orderBy(desc(events.id))
    .limit(query.limit + 1)
    .all();
  const page = rows.slice(0, query.limit);
  return { events: eventViews(db, page), next: rows.length > query.limit ? (page.at(-1)?.id ?? null) : null };
}

/** Events by id (a finding's evidence), newest first; ids not stored are left out. */
export function eventsByIds(db: Store, ids: readonly number[]): EventView[] {
  if (ids.length === 0) return [];
  return eventViews(
    db,
    db
      .select()
      .from(events)
      .where(inArray(events.id, [...ids]))
      .orderBy(desc(events.id))
      .all(),
  );
}

/** Rows as the API shows them, each time also on the coordinator's clock. */
function eventViews(db: Store, page: Array<typeof events.$inferSelect>): EventView[] {
  const agentNames = [...new Set(page.flatMap((e) => (e.agentName ? [e.agentName] : [])))];
  const offsets = new Map(
    agentNames.length === 0
      ? []
      : db
          .select({ name: agents.name, offset: agents.clockOffsetMs })
          .from(agents)
          .where(inArray(agents.name, agentNames))
          .all()
          .map((a) => [a.name, a.offset ?? 0]),
  );
  return page.map(
    (e): EventView => ({
      id: e.id,
      agent: e.agentName,
      kind: e.kind,
      time: e.time,
      coordinatorTime: e.time - (e.source === "coordinator" ? 0 : (offsets.get(e.agentName ?? "") ?? 0)),
      receivedAt: e.receivedAt,
      subject: { kind: e.subjectKind, id: e.subjectId, name: e.subjectName },
      attributes: JSON.parse(e.attributes) as Record<string, string>,
      evidence: JSON.parse(e.evidence) as unknown,
      source: e.source,
    }),
  );
}
