/**
 * The coordinator's SQLite store (better-sqlite3 through drizzle, WAL). Times are Unix
 * milliseconds. Every event has a kind, a subject, a time and evidence, so that the
 * analysis that comes later can work from the store alone.
 */
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

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
    firstSeenAt: integer("first_seen_at").notNull(),
    lastSeenAt: integer("last_seen_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.agentName, t.key] })],
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
  (t) => [primaryKey({ columns: [t.agentName, t.sequence] })],
);

export const events = sqliteTable(
  "events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    agentName: text("agent_name").notNull(),
    sequence: integer("sequence").notNull(),
    /** Position of the event within its batch. */
    position: integer("position").notNull(),
    kind: text("kind").notNull(),
    time: integer("time").notNull(),
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

export const metricSamples = sqliteTable(
  "metric_samples",
  {
    agentName: text("agent_name").notNull(),
    name: text("name").notNull(),
    subjectId: text("subject_id").notNull(),
    time: integer("time").notNull(),
    value: real("value").notNull(),
    labels: text("labels").notNull().default("{}"),
  },
  (t) => [index("metric_samples_series").on(t.agentName, t.name, t.subjectId, t.time), index("metric_samples_time").on(t.time)],
);

/** The dependency graph: one row per directed edge, upserted as connections are seen. */
export const topologyEdges = sqliteTable(
  "topology_edges",
  {
    agentName: text("agent_name").notNull(),
    fromService: text("from_service").notNull(),
    toAddress: text("to_address").notNull(),
    toPort: integer("to_port").notNull(),
    protocol: text("protocol").notNull(),
    firstSeenAt: integer("first_seen_at").notNull(),
    lastSeenAt: integer("last_seen_at").notNull(),
    observations: integer("observations").notNull().default(1),
  },
  (t) => [primaryKey({ columns: [t.agentName, t.fromService, t.toAddress, t.toPort, t.protocol] })],
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
