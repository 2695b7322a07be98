/**
 * Mesh addresses from 100.64.0.0/10 (RFC 6598 shared address space): the coordinator
 * holds the first, each agent key gets one of its own, stable across restarts and
 * re-joins, and an address is handed out again only after `coral agents remove`.
 */

import { CoralError } from "@coral-mesh/sdk-proto";
import { COORDINATOR_ADDRESS, MESH_PREFIX, MESH_PREFIX_LENGTH } from "@coral-mesh/wireguard/path";
import { and, eq, isNull, sql } from "drizzle-orm";
import type { Store } from "../store/db.js";
import { allocations } from "../store/schema.js";

export { COORDINATOR_ADDRESS, MESH_PREFIX };

/** The prefix's last address short of its broadcast address. */
const LAST = ipToInt(MESH_PREFIX.split("/")[0] as string) + 2 ** (32 - MESH_PREFIX_LENGTH) - 2;

export function ipToInt(ip: string): number {
  return ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

/** The agent key's address: its existing allocation, or the lowest free one. */
export function allocateAddress(db: Store, wireguardKey: string, agentName: string, now: number): string {
  return db.transaction((tx) => {
    const existing = tx
      .select()
      .from(allocations)
      .where(and(eq(allocations.wireguardKey, wireguardKey), isNull(allocations.releasedAt)))
      .get();
    if (existing) return intToIp(existing.address);
    // Lowest address above the coordinator's that no live allocation holds.
    const free = tx.get<{ next: number }>(sql`
      SELECT candidate AS next FROM (
        SELECT ${ipToInt(COORDINATOR_ADDRESS)} + 1 AS candidate
        UNION ALL
        SELECT address + 1 FROM ${allocations} WHERE released_at IS NULL
      )
      WHERE candidate <= ${LAST}
        AND candidate NOT IN (SELECT address FROM ${allocations} WHERE released_at IS NULL)
      ORDER BY candidate LIMIT 1`);
    if (!free)
      throw new CoralError(
        "mesh_full",
        `Every address in ${MESH_PREFIX} is taken; remove agents that are gone with \`coral agents remove\`.`,
      );
    tx.insert(allocations)
      .values({ address: free.next, wireguardKey, agentName, allocatedAt: now })
      .onConflictDoUpdate({ target: allocations.address, set: { wireguardKey, agentName, allocatedAt: now, releasedAt: null } })
      .run();
    return intToIp(free.next);
  });
}

/** Releases an agent's address (on `coral agents remove`), so a new agent may get it. */
export function releaseAddress(db: Store, wireguardKey: string, now: number): void {
  db.update(allocations)
    .set({ releasedAt: now })
    .where(and(eq(allocations.wireguardKey, wireguardKey), isNull(allocations.releasedAt)))
    .run();
}
