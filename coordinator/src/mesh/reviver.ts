/**
 * Shakes hands anew with agents that went quiet (see `revive` in @coral-mesh/wireguard/path): for
 * an agent silent for more than two heartbeat intervals, at most every 15 s per agent, for ten
 * minutes.
 */
import { isRelaySocket, revive, type Tunnel } from "@coral-mesh/wireguard/path";
import type { Store } from "../store/db.js";
import { agents } from "../store/schema.js";

/** How often the reviver looks for quiet agents. */
export const REVIVE_EVERY_MS = 5_000;
const PER_AGENT_MS = 15_000;
/** Past this, WireGuard's own session expiry has long made it shake hands again, and a mesh full of switched-off agents costs nothing. */
const RECENTLY_LOST_MS = 600_000;

export class Reviver {
  private readonly last = new Map<string, number>();
  constructor(
    private readonly db: Store,
    private readonly wireguard: Pick<Tunnel, "status" | "setPeer" | "removePeer">,
    private readonly heartbeatIntervalMs: number,
  ) {}

  async tick(): Promise<void> {
    const now = Date.now();
    const quiet = this.db
      .select({ key: agents.wireguardKey, meshIp: agents.meshIp, lastHeartbeatAt: agents.lastHeartbeatAt })
      .from(agents)
      .all()
      .filter(
        (a) =>
          a.lastHeartbeatAt !== null &&
          now - a.lastHeartbeatAt > 2 * this.heartbeatIntervalMs &&
          now - a.lastHeartbeatAt < RECENTLY_LOST_MS,
      );
    if (quiet.length === 0) return;
    const peers = new Map((await this.wireguard.status()).peers.map((p) => [p.publicKey, p]));
    for (const agent of quiet) {
      const peer = peers.get(agent.key);
      // A relayed agent (its peer at a relay socket on loopback) shakes hands anew through the relay itself.
      if (!peer?.endpoint || isRelaySocket(peer.endpoint) || now - (this.last.get(agent.key) ?? 0) < PER_AGENT_MS) continue;
      this.last.set(agent.key, now);
      await revive(this.wireguard, {
        publicKey: agent.key,
        allowedIps: [`${agent.meshIp}/32`],
        endpoint: peer.endpoint,
        meshIp: agent.meshIp,
      });
    }
  }
}
