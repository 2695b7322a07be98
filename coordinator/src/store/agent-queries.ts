/**
 * The agent service's queries, prepared once: at a thousand agents they run a few hundred
 * times a second.
 */
import { sql } from "drizzle-orm";
import type { Store } from "./db.js";
import { agents, batches } from "./schema.js";

const p = sql.placeholder;

/** The few columns the hot paths need. */
export interface Caller {
  name: string;
  hostname: string | null;
  os: string | null;
  arch: string | null;
  version: string | null;
  plugins: string;
  wireguardKey: string;
}

export function prepareAgentQueries(db: Store) {
  const caller = {
    name: agents.name,
    hostname: agents.hostname,
    os: agents.os,
    arch: agents.arch,
    version: agents.version,
    plugins: agents.plugins,
    wireguardKey: agents.wireguardKey,
  };
  const byIp = db
    .select(caller)
    .from(agents)
    .where(sql`${agents.meshIp} = ${p("ip")}`)
    .prepare();
  const byName = db
    .select(caller)
    .from(agents)
    .where(sql`${agents.name} = ${p("name")}`)
    .prepare();
  const registered = db
    .update(agents)
    .set({
      registeredAt: sql`${p("at")}`,
      lastHeartbeatAt: sql`${p("at")}`,
      hostname: sql`${p("hostname")}`,
      os: sql`${p("os")}`,
      arch: sql`${p("arch")}`,
      version: sql`${p("version")}`,
      plugins: sql`${p("plugins")}`,
    })
    .where(sql`${agents.name} = ${p("name")}`)
    .prepare();
  const lastSequence = db
    .select({ sequence: sql<number | null>`max(${batches.sequence})` })
    .from(batches)
    .where(sql`${batches.agentName} = ${p("name")}`)
    .prepare();
  const beat = db
    .update(agents)
    .set({ lastHeartbeatAt: sql`${p("at")}` })
    .where(sql`${agents.name} = ${p("name")}`)
    .prepare();
  const beatWithPlugins = db
    .update(agents)
    .set({ lastHeartbeatAt: sql`${p("at")}`, plugins: sql`${p("plugins")}` })
    .where(sql`${agents.name} = ${p("name")}`)
    .prepare();
  const clockOffset = db
    .update(agents)
    .set({ clockOffsetMs: sql`${p("offset")}` })
    .where(sql`${agents.name} = ${p("name")}`)
    .prepare();
  const addresses = db
    .update(agents)
    .set({ addresses: sql`${p("addresses")}` })
    .where(sql`${agents.name} = ${p("name")}`)
    .prepare();

  return {
    byIp: (ip: string): Caller | undefined => byIp.get({ ip }),
    byName: (name: string): Caller | undefined => byName.get({ name }),
    registered: (name: string, at: number, facts: Omit<Caller, "name" | "wireguardKey">) => registered.run({ name, at, ...facts }),
    lastSequence: (name: string): number => lastSequence.get({ name })?.sequence ?? 0,
    beat: (name: string, at: number, plugins?: string) =>
      plugins === undefined ? beat.run({ name, at }) : beatWithPlugins.run({ name, at, plugins }),
    setClockOffset: (name: string, offset: number) => clockOffset.run({ name, offset }),
    setAddresses: (name: string, list: string[]) => addresses.run({ name, addresses: JSON.stringify(list) }),
  };
}
