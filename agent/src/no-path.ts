/**
 * Why no handshake with the hub came about, said as plainly as the facts allow. Tried through
 * the relay too, the hub is not on the relay. "Needs a relay" only where NATs can be the cause: this host is behind a NAT and has never reached
 * the coordinator, whose record at discovery is current. A coordinator that this agent
 * reached before, or one that a host without a NAT cannot reach, does not answer: it is
 * stopped, or something lies between. A removed agent is told that instead (and stops).
 */
import { CoralError } from "@coral-mesh/sdk-proto";

export interface NoPathFacts {
  /** The endpoints tried. */
  endpoints: string[];
  /** The relay tried after them (its host), if the agent has a ticket for it. */
  relay?: string | undefined;
  timeoutSeconds: number;
  /** What discovery says of the coordinator now: its record was found, or this error. */
  lookup: { ok: true } | { ok: false; error: unknown };
  /** This host's address as discovery saw it at the join is not one of its own (unknown counts as behind one). */
  behindNat: boolean;
  /** This agent has registered with the coordinator before. */
  reachedBefore: boolean;
  discoveryUrl: string;
}

/** The line the agent logs; throws a removal found by the lookup. */
export function explainNoPath(facts: NoPathFacts): string {
  const at = facts.endpoints.join(", ") || "no endpoint";
  const seconds = `in ${facts.timeoutSeconds} s`;
  if (!facts.lookup.ok) {
    const error = facts.lookup.error;
    if (error instanceof CoralError && error.code === "agent_removed") throw error;
    if (error instanceof CoralError && error.code === "mesh_not_found") {
      return (
        `the coordinator does not answer: no handshake through ${at} ${seconds}, and its record at discovery has expired, ` +
        "so it has not been running (or not reached discovery) for 15 minutes or more. " +
        "On its host, check that `coral coordinator start` runs (`coral status` answers). WireGuard keeps trying."
      );
    }
    const why = error instanceof Error ? error.message : String(error);
    return (
      `the coordinator does not answer (no handshake through ${at} ${seconds}), and discovery at ${facts.discoveryUrl} cannot be asked about it (${why}). ` +
      "This host's network may be down, or a firewall blocks both. WireGuard keeps trying."
    );
  }
  if (facts.behindNat && !facts.reachedBefore && facts.relay) {
    return (
      `no path to the coordinator: no handshake through ${at}, nor through the relay at ${facts.relay}, though its record at discovery is current. ` +
      "If the coordinator runs, it is not connected to the relay: its log says why (lines starting `relay:`). " +
      "A discovery Worker deployed before the relay existed has none: deploy it again (`wrangler deploy`). Both are tried again."
    );
  }
  if (facts.behindNat && !facts.reachedBefore) {
    return (
      `no direct path to the coordinator: no handshake through ${at} ${seconds}, though its record at discovery is current. ` +
      "If the coordinator runs, both it and this host are behind NATs that only let in replies (symmetric, or port-restricted facing symmetric): " +
      "such a pair needs the relay, and this agent has no relay ticket yet (the coordinator gives one at the join and at each register). " +
      "Give the coordinator a public address or a forwarded UDP port. WireGuard keeps trying meanwhile."
    );
  }
  const notNats = facts.reachedBefore
    ? "this agent has reached it before, so NATs are not the cause"
    : "this host is not behind a NAT, so NATs are not the cause";
  return (
    `the coordinator does not answer: no handshake through ${at}${facts.relay ? ` nor the relay at ${facts.relay}` : ` ${seconds}`} (${notNats}). ` +
    "It may be stopped, or a firewall or a network partition lies between. " +
    "On its host, check that `coral status` answers and that its WireGuard UDP port can be reached from here. WireGuard keeps trying."
  );
}
