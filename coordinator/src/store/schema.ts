/**
 * The coordinator's SQLite store (better-sqlite3 through drizzle, WAL). Times are Unix
 * milliseconds. Every event has a kind, a subject, a time and evidence, so that the
 * analysis that comes later can work from the store alone.
 */
import { sql } from "drizzle-orm";
import { blob, index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

export const agents = sqliteTable("agents", {
  name: text("name").primaryKey(),
  wireguardKey: text("wireguard_key").notNull().unique(),
  meshIp: text("mesh_ip").notNull().unique(),
  tokenId: text("token_id"),
  hostname: text("hostname"),
  os: text("os"),
  arch: text("arch"),
  version: text("version"),
  enrolledAt: integer("enrolled_at").notNull(),
  registeredAt: integer("registered_at"),
  lastHeartbeatAt: integer("last_heartbeat_at"),
  /** The agent's address as the hub last saw it (its NAT mapping): where to reach it after a restart. */
  endpoint: text("endpoint"),
  /** Plugin states from the latest heartbeat, as JSON. */
  plugins: text("plugins").notNull().default("[]"),
  /** The host's own addresses, from its latest register: where other agents' connections to it arrive. */
  addresses: text("addresses", { mode: "json" }).$type<string[]>().notNull().default([]),
  /** The agent's clock minus the coordinator's, estimated from its requests (see rpc/clock.ts). */
  clockOffsetMs: integer("clock_offset_ms"),
  /** Health as last evaluated (healthy, degraded, unhealthy, offline): a change is an event. */
  health: text("health"),
});

/** Mesh addresses: one per agent key, kept until `coral agents remove` releases it. */
export const allocations = sqliteTable(
  "allocations",
  {
    /** The address as a 32-bit integer, so the lowest free one is one indexed query away. */
    address: integer("address").primaryKey(),
    wireguardKey: text("wireguard_key").notNull(),
    agentName: text("agent_name").notNull(),
    allocatedAt: integer("allocated_at").notNull(),
    releasedAt: integer("released_at"),
  },
  (t) => [index("allocations_key").on(t.wireguardKey)],
);

export const tokens = sqliteTable("tokens", {
  id: text("id").primaryKey(),
  name: text("name"),
  /** SHA-256 of the join secret, hex; the secret itself is never stored. */
  secretHash: text("secret_hash").notNull(),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
  maxUses: integer("max_uses").notNull(),
  uses: integer("uses").notNull().default(0),
  revokedAt: integer("revoked_at"),
});

export const services = sqliteTable(
  "services",
  {
    agentName: text("agent_name").notNull(),
    /** The service's identity on its agent (executable and arguments, unit, or SDK name). */
    key: text("key").notNull(),
    name: text("name").notNull(),
    version: text("version"),
    /** "passive" or "sdk": how Coral knows about it. */
    source: text("source").notNull(),
    health: text("health"),
    details: text("details").notNull().default("{}"),
    /** Listening sockets, `address:port`, kept from service.observed, port.opened and port.closed. */
    listening: text("listening", { mode: "json" }).$type<string[]>().notNull().default([]),
    executable: text("executable"),
    firstSeenAt: integer("first_seen_at").notNull(),
    lastSeenAt: integer("last_seen_at").notNull(),
    /** When its last process exited (the passive collector's `process.exited` with none remaining); null while one runs. */
    stoppedAt: integer("stopped_at"),
    /** When the coordinator last wrote the row (its clock): readers refresh what changed since they last looked. */
    updatedAt: integer("updated_at").notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.agentName, t.key] }),
    index("services_name").on(t.name),
    index("services_last_seen").on(t.lastSeenAt),
    index("services_updated").on(t.updatedAt),
  ],
);

/** Report batches stored, by (agent, sequence): ingesting a batch twice is a no-op. */
export const batches = sqliteTable(
  "batches",
  {
    agentName: text("agent_name").notNull(),
    sequence: integer("sequence").notNull(),
    receivedAt: integer("received_at").notNull(),
    droppedBefore: integer("dropped_before").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.agentName, t.sequence] }), index("batches_received_at").on(t.receivedAt)],
);

/**
 * What agents observed, and what the coordinator observed itself (`source` = "coordinator":
 * agents going unhealthy and back, plugins failing, paths changing, discovery failing).
 * The coordinator's own have no batch (sequence and position null), and discovery's no agent.
 */
export const events = sqliteTable(
  "events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    agentName: text("agent_name"),
    sequence: integer("sequence"),
    /** Position of the event within its batch. */
    position: integer("position"),
    kind: text("kind").notNull(),
    /** By the observer's clock (the agent's). */
    time: integer("time").notNull(),
    /** By the coordinator's clock, when it stored the event. */
    receivedAt: integer("received_at").notNull().default(0),
    subjectKind: text("subject_kind").notNull(),
    subjectId: text("subject_id").notNull(),
    subjectName: text("subject_name"),
    attributes: text("attributes").notNull().default("{}"),
    evidence: text("evidence").notNull().default("{}"),
    source: text("source"),
  },
  (t) => [
    uniqueIndex("events_batch_position").on(t.agentName, t.sequence, t.position),
    index("events_time").on(t.time),
    index("events_kind_time").on(t.kind, t.time),
    index("events_agent_time").on(t.agentName, t.time),
  ],
);

/**
 * One metric series: a name, a subject on one agent, and its labels. Samples refer to it by
 * id, so the names are stored once, not on every sample.
 */
export const metricSeries = sqliteTable(
  "metric_series",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    agentName: text("agent_name").notNull(),
    name: text("name").notNull(),
    subjectKind: text("subject_kind").notNull(),
    subjectId: text("subject_id").notNull(),
    /** Labels as canonical JSON (keys sorted), "{}" for none: part of the series' identity. */
    labels: text("labels").notNull().default("{}"),
    source: text("source"),
    firstSeenAt: integer("first_seen_at").notNull(),
    lastSeenAt: integer("last_seen_at").notNull(),
  },
  (t) => [
    uniqueIndex("metric_series_identity").on(t.agentName, t.subjectId, t.name, t.labels),
    index("metric_series_last_seen").on(t.lastSeenAt),
  ],
);

/**
 * Raw samples, one row per agent per report batch: `data` packs each sample as series id,
 * time offset and value (store/frames.ts), a few bytes each instead of a row each.
 */
export const metricFrames = sqliteTable(
  "metric_frames",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    agentName: text("agent_name").notNull(),
    /** The earliest and latest sample time in the frame. */
    startTime: integer("start_time").notNull(),
    endTime: integer("end_time").notNull(),
    samples: integer("samples").notNull(),
    data: blob("data", { mode: "buffer" }).notNull(),
  },
  (t) => [index("metric_frames_agent_time").on(t.agentName, t.startTime), index("metric_frames_time").on(t.startTime)],
);

/**
 * Rollups: per agent and bucket (a minute or an hour), every series' count, sum, min, max,
 * packed like frames. Kept far longer than raw samples, so baselines of weeks survive.
 */
export const metricRollups = sqliteTable(
  "metric_rollups",
  {
    agentName: text("agent_name").notNull(),
    /** The bucket's length: 60000 (a minute) or 3600000 (an hour). */
    resolutionMs: integer("resolution_ms").notNull(),
    bucketStart: integer("bucket_start").notNull(),
    data: blob("data", { mode: "buffer" }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.resolutionMs, t.agentName, t.bucketStart] }),
    index("metric_rollups_time").on(t.resolutionMs, t.bucketStart),
  ],
);

/** Small facts the store keeps about itself, e.g. how far rollups have got. */
export const storeState = sqliteTable("store_state", {
  key: text("key").primaryKey(),
  value: integer("value").notNull(),
});

/** The dependency graph: one row per directed edge, upserted as connections are seen. */
export const topologyEdges = sqliteTable(
  "topology_edges",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    agentName: text("agent_name").notNull(),
    fromService: text("from_service").notNull(),
    toAddress: text("to_address").notNull(),
    toPort: integer("to_port").notNull(),
    protocol: text("protocol").notNull(),
    firstSeenAt: integer("first_seen_at").notNull(),
    lastSeenAt: integer("last_seen_at").notNull(),
    observations: integer("observations").notNull().default(1),
    /** When the coordinator last wrote the row (its clock), as for services. */
    updatedAt: integer("updated_at").notNull().default(0),
  },
  (t) => [
    uniqueIndex("topology_edges_identity").on(t.agentName, t.fromService, t.toAddress, t.toPort, t.protocol),
    index("topology_edges_last_seen").on(t.lastSeenAt),
    index("topology_edges_updated").on(t.updatedAt),
  ],
);

/** How often each edge was seen per hour, so that the graph of any past hour can be drawn. */
export const topologyEdgeHours = sqliteTable(
  "topology_edge_hours",
  {
    edgeId: integer("edge_id")
      .notNull()
      .references(() => topologyEdges.id, { onDelete: "cascade" }),
    hour: integer("hour").notNull(),
    observations: integer("observations").notNull(),
  },
  (t) => [primaryKey({ columns: [t.edgeId, t.hour] }), index("topology_edge_hours_hour").on(t.hour)],
);

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    time: integer("time").notNull(),
    /** e.g. "token.created", "token.used", "token.revoked", "agent.enrolled", "agent.removed", "join.refused". */
    action: text("action").notNull(),
    subject: text("subject").notNull(),
    details: text("details").notNull().default("{}"),
  },
  (t) => [index("audit_log_time").on(t.time)],
);

export type AgentRow = typeof agents.$inferSelect;
export type TokenRow = typeof tokens.$inferSelect;

/**
 * Every join request handled, with the answer given. A request still pending at discovery
 * after a restart (the coordinator stopped between enrolling and answering) gets the same
 * answer again instead of spending another use of its token.
 */
export const joinAnswers = sqliteTable("join_answers", {
  joinId: text("join_id").primaryKey(),
  /** The answer payload (JSON, before sealing: it holds no secret). */
  answer: text("answer").notNull(),
  agentName: text("agent_name"),
  wireguardKey: text("wireguard_key").notNull(),
  answeredAt: integer("answered_at").notNull(),
});

/**
 * What the analysis concluded (sdk-proto `findingSchema`). One row per fault: `identity` (kind,
 * service or agent, and what the detector keys it by) is unique among open findings, so the same
 * fault updates its row instead of opening another; once resolved, a recurrence opens a new one.
 * Written by the main thread only, from what the engine in its worker thread concluded.
 */
export const findings = sqliteTable(
  "findings",
  {
    id: text("id").primaryKey(),
    identity: text("identity").notNull(),
    kind: text("kind").notNull(),
    severity: text("severity").notNull(),
    state: text("state").notNull(),
    service: text("service"),
    agentName: text("agent_name"),
    rootCause: text("root_cause", { mode: "json" }).notNull(),
    summary: text("summary").notNull(),
    confidence: real("confidence").notNull(),
    evidence: text("evidence", { mode: "json" }).notNull(),
    recommendation: text("recommendation", { mode: "json" }).notNull(),
    since: integer("since").notNull(),
    openedAt: integer("opened_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    resolvedAt: integer("resolved_at"),
  },
  (t) => [
    uniqueIndex("findings_open_identity").on(t.identity).where(sql`state = 'open'`),
    index("findings_state_severity").on(t.state, t.severity),
    index("findings_service").on(t.service, t.openedAt),
    index("findings_opened").on(t.openedAt),
    // The ranking order within a state and severity, so a page of the best findings reads only its own rows.
    index("findings_rank").on(t.state, t.severity, sql`${t.confidence} desc`, t.openedAt),
  ],
);
export type FindingRow = typeof findings.$inferSelect;
