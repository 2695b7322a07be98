/**
 * Service instances and dependency edges, held in memory for the queries that read them all
 * (`coral services`, `coral topology`): at a thousand agents that is tens of thousands of
 * rows, too many to read from SQLite on every call. Each read first fetches what changed
 * since the last one (every write sets `updated_at`, which is indexed), and reloads whole
 * when rows were deleted (retention), which it tells by counting.
 *
 * What is derived from the rows is kept too, and rebuilt only when what it depends on
 * changed: the resolver (agents' addresses and the sockets services listen on), each
 * instance's service name, and each edge's resolution. Under load every report moves
 * instances' `last_seen`, which none of these depend on, so a read redoes none of them.
 */
import { gte, sql } from "drizzle-orm";
import type { Store } from "./db.js";
import { type Resolution, Resolver } from "./resolve.js";
import { agents, services, topologyEdges } from "./schema.js";

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
  stoppedAt: services.stoppedAt,
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
    agentAddresses: db
      .select({ name: agents.name, meshIp: agents.meshIp, addresses: agents.addresses, endpoint: agents.endpoint })
      .from(agents)
      .prepare(),
  };
}

export type InstanceRow = ReturnType<ReturnType<typeof prepare>["instancesSince"]["all"]>[number];
export type EdgeRow = typeof topologyEdges.$inferSelect;

/** A table's rows by key, the latest `updated_at` read, and a version that moves when a row's shape does. */
class Mirror<Row extends { updatedAt: number }> {
  readonly rows = new Map<string | number, Row>();
  /** Bumped when a row is added or removed, or changes what `shapeOf` says of it. */
  version = 0;
  private seen = -1;
  private list: Row[] | undefined;

  constructor(
    private readonly since: (since: number) => Row[],
    private readonly count: () => number,
    private readonly keyOf: (row: Row) => string | number,
    private readonly shapeOf: (row: Row) => string,
  ) {}

  refresh(): void {
    // `>=`: a row written in the same millisecond as the last one read, after that read, is read again rather than missed.
    for (const row of this.since(this.seen)) {
      const key = this.keyOf(row);
      const before = this.rows.get(key);
      if (!before || this.shapeOf(before) !== this.shapeOf(row)) this.version++;
      this.rows.set(key, row);
      this.list = undefined;
      if (row.updatedAt > this.seen) this.seen = row.updatedAt;
    }
    if (this.rows.size !== this.count()) {
      this.rows.clear();
      this.list = undefined;
      this.seen = -1;
      this.version++;
      this.refresh();
    }
  }

  values(): Row[] {
    this.list ??= [...this.rows.values()];
    return this.list;
  }
}

/** The rows, and what the queries derive from them. */
export interface Inventory {
  instances: readonly InstanceRow[];
  edges: readonly EdgeRow[];
  /** The service name of `key` on `agent`, where an instance is known. */
  nameOf(agent: string, key: string): string | undefined;
  /** The agents a service runs on, sorted. */
  agentsOf(service: string): readonly string[];
  /** Where an edge leads: a service, an external, or Coral's own traffic. */
  resolve(edge: EdgeRow): Resolution;
}

interface Derived {
  instancesVersion: number;
  agentsKey: string;
  resolver: Resolver;
  names: Map<string, string>;
  agents: Map<string, string[]>;
  resolutions: Map<number, Resolution>;
}

export class ReadModel {
  private readonly q: ReturnType<typeof prepare>;
  private readonly instances: Mirror<InstanceRow>;
  private readonly edges: Mirror<EdgeRow>;
  private derived: Derived | undefined;

  constructor(db: Store) {
    const q = prepare(db);
    this.q = q;
    this.instances = new Mirror(
      (since) => q.instancesSince.all({ since }),
      () => q.instanceCount.get()?.n ?? 0,
      (row) => `${row.agentName}\u0000${row.key}`,
      (row) => `${row.name}\u0000${row.listening.join(" ")}`,
    );
    // An edge's id stands for its subject and far end (agent, address, port): what it resolves to never moves with its row.
    this.edges = new Mirror(
      (since) => q.edgesSince.all({ since }),
      () => q.edgeCount.get()?.n ?? 0,
      (row) => row.id,
      () => "",
    );
  }

  /** Every service instance and edge, as the store has them now. */
  private read(): { instances: readonly InstanceRow[]; edges: readonly EdgeRow[] } {
    this.instances.refresh();
    this.edges.refresh();
    return { instances: this.instances.values(), edges: this.edges.values() };
  }

  /** The rows with their names and resolutions, rebuilt only when the rows' shape or the agents' addresses moved. */
  inventory(): Inventory {
    const { instances, edges } = this.read();
    const agentRows = this.q.agentAddresses.all();
    const agentsKey = agentRows.map((a) => `${a.name} ${a.meshIp} ${a.addresses.join(",")} ${a.endpoint ?? ""}`).join("\n");
    let d = this.derived;
    if (!d || d.instancesVersion !== this.instances.version || d.agentsKey !== agentsKey) {
      d = {
        instancesVersion: this.instances.version,
        agentsKey,
        resolver: new Resolver(
          agentRows,
          instances.flatMap((i) => i.listening.map((socket) => ({ agent: i.agentName, service: i.name, socket }))),
        ),
        names: new Map(instances.map((i) => [`${i.agentName}\u0000${i.key}`, i.name])),
        agents: agentsByService(instances),
        resolutions: new Map(),
      };
      this.derived = d;
    }
    const { resolver, names, agents: agentsOf, resolutions } = d;
    return {
      instances,
      edges,
      nameOf: (agent, key) => names.get(`${agent}\u0000${key}`),
      agentsOf: (service) => agentsOf.get(service) ?? [],
      resolve: (edge) => {
        let to = resolutions.get(edge.id);
        if (!to) {
          to = resolver.resolve(edge.agentName, edge.toAddress, edge.toPort);
          resolutions.set(edge.id, to);
        }
        return to;
      },
    };
  }
}

function agentsByService(instances: readonly InstanceRow[]): Map<string, string[]> {
  const sets = new Map<string, Set<string>>();
  for (const i of instances) {
    const set = sets.get(i.name);
    if (set) set.add(i.agentName);
    else sets.set(i.name, new Set([i.agentName]));
  }
  return new Map([...sets].map(([name, set]) => [name, [...set].sort()]));
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
