/**
 * Service instances and dependency edges, held in memory for the queries that read them all
 * (`coral services`, `coral topology`): at a thousand agents that is tens of thousands of
 * rows, too many to read from SQLite on every call. Each read first fetches what changed
 * since the last one (every write sets `updated_at`, which is indexed), and reloads whole
 * when rows were deleted (retention), which it tells by counting.
 */
import { gte, sql } from "drizzle-orm";
import type { Store } from "./db.js";
import { services, topologyEdges } from "./schema.js";

const p = sql.placeholder;

const instanceColumns = {
  agentName: services.agentName,
  key: services.key,
  name: services.name,
  version: services.version,
  source: services.source,
  health: services.health,
  listening: services.listening,
  executable: services.executable,
  firstSeenAt: services.firstSeenAt,
  lastSeenAt: services.lastSeenAt,
  updatedAt: services.updatedAt,
};

function prepare(db: Store) {
  return {
    instancesSince: db
      .select(instanceColumns)
      .from(services)
      .where(gte(services.updatedAt, p("since")))
      .prepare(),
    edgesSince: db
      .select()
      .from(topologyEdges)
      .where(gte(topologyEdges.updatedAt, p("since")))
      .prepare(),
    instanceCount: db.select({ n: sql<number>`count(*)` }).from(services).prepare(),
    edgeCount: db.select({ n: sql<number>`count(*)` }).from(topologyEdges).prepare(),
  };
}

export type InstanceRow = ReturnType<ReturnType<typeof prepare>["instancesSince"]["all"]>[number];
export type EdgeRow = typeof topologyEdges.$inferSelect;

/** A table's rows by key, and the latest `updated_at` read. */
class Mirror<Row extends { updatedAt: number }> {
  readonly rows = new Map<string | number, Row>();
  private seen = -1;

  constructor(
    private readonly since: (since: number) => Row[],
    private readonly count: () => number,
    private readonly keyOf: (row: Row) => string | number,
  ) {}

  refresh(): void {
    // `>=`: a row written in the same millisecond as the last one read, after that read, is read again rather than missed.
    for (const row of this.since(this.seen)) {
      this.rows.set(this.keyOf(row), row);
      if (row.updatedAt > this.seen) this.seen = row.updatedAt;
    }
    if (this.rows.size !== this.count()) {
      this.rows.clear();
      this.seen = -1;
      this.refresh();
    }
  }
}

export class ReadModel {
  private readonly instances: Mirror<InstanceRow>;
  private readonly edges: Mirror<EdgeRow>;

  constructor(db: Store) {
    const q = prepare(db);
    this.instances = new Mirror(
      (since) => q.instancesSince.all({ since }),
      () => q.instanceCount.get()?.n ?? 0,
      (row) => `${row.agentName}\u0000${row.key}`,
    );
    this.edges = new Mirror(
      (since) => q.edgesSince.all({ since }),
      () => q.edgeCount.get()?.n ?? 0,
      (row) => row.id,
    );
  }

  /** Every service instance and edge, as the store has them now. */
  read(): { instances: InstanceRow[]; edges: EdgeRow[] } {
    this.instances.refresh();
    this.edges.refresh();
    return { instances: [...this.instances.rows.values()], edges: [...this.edges.rows.values()] };
  }
}

const models = new WeakMap<Store, ReadModel>();

/** The read model of a store, made on first use. */
export function readModel(db: Store): ReadModel {
  let model = models.get(db);
  if (!model) {
    model = new ReadModel(db);
    models.set(db, model);
  }
  return model;
}
