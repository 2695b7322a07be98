/** Where each agent was last seen from, remembered so that a restarted hub can reach it first. */
import { isRelaySocket, type Tunnel } from "@coral-mesh/wireguard/path";
import { eq } from "drizzle-orm";
import type { Store } from "../store/db.js";
import type { Observe } from "../store/observations.js";
import { agents } from "../store/schema.js";

/** How often the hub's peer table is compared with the store. */
export const RECORD_ENDPOINTS_EVERY_MS = 10_000;

/**
 * Writes each endpoint that changed; a change of one already known is an event (`agent.path_changed`).
 * The relay's local sockets are not kept (one the hub's end has since forgotten included): they
 * mean nothing after a restart, and the address the agent was last seen at directly is what a
 * restarted hub tries first.
 */
export async function recordEndpoints(db: Store, wireguard: Pick<Tunnel, "status">, observe?: Observe): Promise<void> {
  const peers = (await wireguard.status()).peers.filter((p) => !isRelaySocket(p.endpoint));
  const known = new Map(
    db
      .select({ key: agents.wireguardKey, name: agents.name, endpoint: agents.endpoint })
      .from(agents)
      .all()
      .map((a) => [a.key, a]),
  );
  const changed = peers.filter((p) => p.endpoint && known.has(p.publicKey) && known.get(p.publicKey)?.endpoint !== p.endpoint);
  if (changed.length === 0) return;
  db.transaction((tx) => {
    for (const peer of changed) tx.update(agents).set({ endpoint: peer.endpoint }).where(eq(agents.wireguardKey, peer.publicKey)).run();
  });
  const at = Date.now();
  for (const peer of changed) {
    const agent = known.get(peer.publicKey);
    if (!agent?.endpoint || !peer.endpoint) continue; // the first endpoint learnt is no change of path
    observe?.({
      kind: "agent.path_changed",
      agent: agent.name,
      subject: { kind: "agent", id: agent.name, name: agent.name },
      attributes: { from: agent.endpoint, to: peer.endpoint },
      time: at,
    });
  }
}
