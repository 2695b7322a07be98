/**
 * Agents removed with `coral agents remove`, as the audit log has them: what the coordinator
 * tells a removed agent, which can no longer reach the hub, through its record at discovery
 * (removal marks) and, where it can still call (over loopback), on its gRPC calls.
 */
import { discoveryLimits, removalMark } from "@coral-mesh/sdk-proto";
import { and, desc, eq, gte } from "drizzle-orm";
import type { Store } from "../store/db.js";
import { agents, auditLog } from "../store/schema.js";

/** How long a removal is told to the agent it removed. */
export const REMOVAL_TOLD_FOR_MS = 30 * 24 * 3600_000;

export interface Removal {
  name: string;
  wireguardKey: string;
  at: number;
}

/** Removals of the last REMOVAL_TOLD_FOR_MS, newest first, of keys not enrolled again since. */
export function recentRemovals(db: Store, now: number, limit: number = discoveryLimits.maxRemoved): Removal[] {
  const rows = db
    .select({ subject: auditLog.subject, details: auditLog.details, time: auditLog.time })
    .from(auditLog)
    .where(and(eq(auditLog.action, "agent.removed"), gte(auditLog.time, now - REMOVAL_TOLD_FOR_MS)))
    .orderBy(desc(auditLog.time))
    .all();
  const enrolled = new Set(
    db
      .select({ key: agents.wireguardKey })
      .from(agents)
      .all()
      .map((a) => a.key),
  );
  const seen = new Set<string>();
  const removals: Removal[] = [];
  for (const row of rows) {
    const key = (JSON.parse(row.details) as { wireguardKey?: string }).wireguardKey;
    if (!key || enrolled.has(key) || seen.has(key)) continue;
    seen.add(key);
    removals.push({ name: row.subject, wireguardKey: key, at: row.time });
    if (removals.length >= limit) break;
  }
  return removals;
}

/** The record's `removed` field: absent when nobody was removed (so a Worker older than the field still takes it). */
export function removedMarks(db: Store, now: number): { removed?: string[] } {
  const removals = recentRemovals(db, now);
  return removals.length > 0 ? { removed: removals.map((r) => removalMark(r.wireguardKey)) } : {};
}

/** The removal of an agent of this name, unless an agent of that name is enrolled now. */
export function removalOf(db: Store, name: string, now: number): Removal | undefined {
  return recentRemovals(db, now, Number.POSITIVE_INFINITY).find((r) => r.name === name);
}

/** What a removed agent is told, by the coordinator and by the agent itself. */
export function removedMessage(name: string, at: number): string {
  return (
    `agent ${name} was removed from this mesh with \`coral agents remove ${name}\` (${new Date(at).toISOString()}), and is refused. ` +
    "To bring it back, create an invite on the coordinator (`coral token create`) and start the agent with --join INVITE."
  );
}
