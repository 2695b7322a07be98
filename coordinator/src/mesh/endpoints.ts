/** Where each agent was last seen from, remembered so that a restarted hub can reach it first. */
import type { Tunnel } from "@coral/wireguard/path";
import { eq } from "drizzle-orm";
import type { Store } from "../store/db.js";
import { agents } from "../store/schema.js";

/** How often the hub's peer table is compared with the store. */
export const RECORD_ENDPOINTS_EVERY_MS = 10_000;

export async function recordEndpoints(db: Store, wireguard: Pick<Tunnel, "status">): Promise<void> {
  const { peers } = await wireguard.status();
  const known = new Map(
    db
      .select({ key: agents.wireguardKey, endpoint: agents.endpoint })
      .from(agents)
      .all()
      .map((a) => [a.key, a.endpoint]),
  );
  const changed = peers.filter((p) => p.endpoint && known.has(p.publicKey) && known.get(p.publicKey) !== p.endpoint);
  if (changed.length === 0) return;
  db.transaction((tx) => {
    for (const peer of changed) tx.update(agents).set({ endpoint: peer.endpoint }).where(eq(agents.wireguardKey, peer.publicKey)).run();
  });
}
