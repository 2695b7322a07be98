/** What `coral status` says of each agent's path: how its tunnel came about, if it did. */

/**
 * `direct`: the tunnel has shaken hands. `relay`: it has, through the mesh's relay (the hub's
 * peer entry points at one of its relay's local sockets). `relay-needed`: the agent joined more than
 * RELAY_NEEDED_AFTER_MS ago and was never heard from: no handshake ever came through, which
 * between two NATs that only let replies in means no direct path exists. `loopback`: no
 * WireGuard (`--wireguard off`). `unknown`: not yet known either way.
 */
export type PathKind = "direct" | "relay" | "relay-needed" | "loopback" | "unknown";

/**
 * Both ends try to reach a new agent for 10 s after it joins (the agent its candidates, the
 * hub the agent's observed address); past this without a single handshake, no direct path
 * exists.
 */
export const RELAY_NEEDED_AFTER_MS = 15_000;

export interface PathFacts {
  /** The coordinator runs without WireGuard. */
  loopback: boolean;
  /** Unix ms of the hub's latest handshake with the agent, from its peer table. */
  latestHandshake: number | null | undefined;
  /** The hub's peer entry points at its relay's socket for this agent. */
  relayed?: boolean;
  /** Unix ms of the agent's last heartbeat, null if it never sent one. */
  lastHeartbeatAt: number | null;
  enrolledAt: number;
  now: number;
}

export function pathKind(facts: PathFacts): PathKind {
  if (facts.loopback) return "loopback";
  if (facts.latestHandshake) return facts.relayed ? "relay" : "direct";
  if (facts.lastHeartbeatAt === null && facts.now - facts.enrolledAt > RELAY_NEEDED_AFTER_MS) return "relay-needed";
  return "unknown";
}
