/**
 * The agent's side of a path to the hub: strategies tried in order until one has a
 * handshake. Each strategy is one way through (`direct`, then the agent's relay), and says
 * itself why it could not get through.
 */
import type { Nudger } from "./handshake.js";
import type { Tunnel } from "./tunnel.js";

/** The hub as a peer of the agent's interface. */
export interface HubPeer {
  publicKey: string;
  /** Where the hub's WireGuard port may be reached, best first. */
  endpoints: string[];
  /** The hub's address in the mesh. */
  meshIp: string;
  /** What the peer entry routes through the tunnel: the mesh prefix. */
  allowedIps: string[];
}

export interface PathContext {
  tunnel: Pick<Tunnel, "status" | "setPeer" | "removePeer">;
  log: (line: string) => void;
  /** Aborting it ends the attempt (the agent is stopping). */
  signal?: AbortSignal;
  /** Start over even when the tunnel shook hands moments ago (its session may be one the hub no longer has). */
  fresh?: boolean;
  /**
   * Give up on a way through once nothing at all has come from the hub in this long (a relay
   * waits behind it): where a direct path exists, the hub's answer or its own packets toward
   * the agent arrive within a second; between NATs that defeat it, nothing ever does.
   */
  quietMs?: number;
  /** What sends packets toward the hub while a handshake is awaited (a UDP socket, unless a test says otherwise). */
  nudger?: () => Nudger;
}

export interface PathStrategy {
  readonly name: string;
  /** Tries to bring the tunnel up this way: the endpoint the hub is reached through, or undefined. */
  reach(hub: HubPeer, context: PathContext): Promise<string | undefined>;
}

/** Tries each strategy in turn; the endpoint the first one to get through reached the hub at, or undefined. */
export async function connect(hub: HubPeer, context: PathContext, strategies: readonly PathStrategy[]): Promise<string | undefined> {
  for (const strategy of strategies) {
    if (context.signal?.aborted) return undefined;
    const through = await strategy.reach(hub, context);
    if (through !== undefined) return through;
  }
  return undefined;
}
