/**
 * The hub's end of the mesh's relay (docs/discovery.md, "Relay"): one WebSocket to the relay
 * room in the mesh's discovery Worker, held open while the coordinator runs, so that an agent
 * with no direct path reaches the hub through it at once. WireGuard learns each relayed agent's
 * endpoint (a local socket of the relay's) from its first packets, as it learns any roaming
 * peer's; this says which agents those are, and says so in the log.
 *
 * A relayed agent may have a direct path after all (the hub's packets toward it never left a
 * busy machine in time): a second after it arrives, the hub sends it one packet at the address
 * discovery saw it at. If that gets through, the agent's WireGuard follows it, and both ends
 * go direct by themselves.
 */
import { hubRelayHeaders, relayUrl, type SigningKeyPair } from "@coral-mesh/sdk-proto";
import { HubRelay, KEEPALIVE_SECONDS, nudge, peerOf, type RelayState, type Tunnel } from "@coral-mesh/wireguard/path";
import { eq } from "drizzle-orm";
import type { Store } from "../store/db.js";
import type { Observe } from "../store/observations.js";
import { agents } from "../store/schema.js";

/** How long after a relayed agent's arrival the hub tries a packet straight toward it. */
const DIRECT_NUDGE_AFTER_MS = 1_000;

export interface HubRelayOptions {
  discoveryUrl: string;
  meshId: string;
  signing: SigningKeyPair;
  /** The hub's WireGuard port. */
  listenPort: number;
  db: Store;
  wireguard: Pick<Tunnel, "status" | "setPeer">;
  observe?: Observe;
  log: (line: string) => void;
}

/** What `coral status` says of the relay. */
export interface RelayView {
  /** The relay's host (the discovery Worker's). */
  host: string;
  state: RelayState;
  /** Agents whose packets came through it in the last ten minutes. */
  agents: number;
  /** Datagrams it carried since the coordinator started, both ways (each a message the Worker bills). */
  datagrams: number;
}

export class HubRelayLink {
  readonly host: string;
  private readonly relay: HubRelay;

  constructor(private readonly options: HubRelayOptions) {
    const url = relayUrl(options.discoveryUrl, options.meshId);
    this.host = new URL(url).host;
    this.relay = HubRelay.open(
      {
        url,
        // Signed afresh for each connection: a signature is good once.
        headers: () => hubRelayHeaders(options.signing, url),
        wireguardPort: options.listenPort,
        log: options.log,
      },
      (key, endpoint) => this.arrived(key, endpoint),
    );
  }

  view(): RelayView {
    const { datagramsUp, datagramsDown } = this.relay.counters;
    return { host: this.host, state: this.relay.state, agents: this.relay.endpoints().size, datagrams: datagramsUp + datagramsDown };
  }

  close(): void {
    this.relay.close();
  }

  private arrived(key: string, endpoint: string): void {
    const { db, log, observe } = this.options;
    const agent = db
      .select({ name: agents.name, meshIp: agents.meshIp, endpoint: agents.endpoint })
      .from(agents)
      .where(eq(agents.wireguardKey, key))
      .get();
    if (!agent) return; // a removed agent's ticket, still in date: WireGuard has no peer for it
    log(
      `agent ${agent.name} (${agent.meshIp}) reaches this hub through the relay at ${this.host}: ` +
        `no direct path came up${agent.endpoint ? ` to ${agent.endpoint}` : ""} (NATs on both sides that only let replies in)`,
    );
    observe?.({
      kind: "agent.path_changed",
      agent: agent.name,
      subject: { kind: "agent", id: agent.name, name: agent.name },
      attributes: { from: agent.endpoint ?? "none", to: `relay ${this.host}` },
      time: Date.now(),
    });
    if (agent.endpoint) {
      const timer = setTimeout(
        () => void this.tryDirect(key, agent.meshIp, agent.endpoint as string, endpoint).catch(() => {}),
        DIRECT_NUDGE_AFTER_MS,
      );
      timer.unref?.();
    }
  }

  /** One packet straight to where discovery saw the agent, then the peer back at the relay. */
  private async tryDirect(key: string, meshIp: string, observed: string, relayed: string): Promise<void> {
    const { wireguard } = this.options;
    const peer = await peerOf(wireguard, key);
    if (!peer || peer.endpoint !== relayed) return;
    const entry = { publicKey: key, allowedIps: peer.allowedIps, persistentKeepalive: KEEPALIVE_SECONDS };
    await wireguard.setPeer({ ...entry, endpoint: observed });
    await nudge([meshIp]);
    await new Promise((r) => setTimeout(r, 50)); // for it to leave
    // What the agent sends next comes from wherever its WireGuard sends now: the relay, unless
    // the packet got through, and the hub follows it either way.
    if ((await peerOf(wireguard, key))?.endpoint === observed) await wireguard.setPeer({ ...entry, endpoint: relayed });
  }
}
