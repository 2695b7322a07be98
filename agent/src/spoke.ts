/**
 * The agent's end of its tunnel to the hub: the WireGuard interface (none with
 * `--wireguard off`), reaching the hub through it (see `connect` in @coral-mesh/wireguard/path),
 * and remembering in the data directory which endpoints to try first next time.
 *
 * The ways to the hub, in order: `direct`, direct again at the endpoints discovery has now if
 * they changed, then the mesh's relay in its discovery Worker (when the agent has a relay ticket). Direct gives way to the relay quickly, once nothing at all has
 * come from the hub (QUIET_MS), which is how a pair of NATs that defeat it looks. While relayed,
 * the spoke keeps looking for a direct path (see probeDirect), and leaves the relay once it finds one.
 */
import { agentRelayHeaders, CoralError, relayUrl } from "@coral-mesh/sdk-proto";
import { WireGuardInterface, type WireGuardKeyPair } from "@coral-mesh/wireguard";
import {
  AgentRelay,
  connect,
  direct,
  type HubPeer,
  KEEPALIVE_SECONDS,
  NoTunnel,
  type PathStrategy,
  peerOf,
  probeDirect,
  type Tunnel,
  tcpProbe,
  throughRelay,
} from "@coral-mesh/wireguard/path";
import { type MeshState, saveMeshState } from "./join.js";
import { currentRelayTicket } from "./relay-ticket.js";

/** With a relay behind it, direct gives up once nothing has come from the hub in this long. */
export const QUIET_MS = 1_500;
/**
 * While relayed, a direct path is looked for after these waits, then every last one. Each look
 * holds the tunnel's traffic for up to PROBE_MS (TCP sends it again), so they are few.
 */
export const DIRECT_RETRY_MS: readonly number[] = [15_000, 60_000, 300_000];

export interface SpokeOptions {
  dataDir: string;
  mesh: MeshState;
  /** `off`: no WireGuard; the coordinator runs on this machine with `--wireguard off`. */
  mode: "auto" | "kernel" | "userspace" | "off";
  log: (line: string) => void;
  /** Aborting it ends a connect under way (the agent is stopping). */
  signal?: AbortSignal;
  /** No handshake came through these endpoints, nor the relay: says why (see explainNoPath), or throws a removal. */
  onNoPath?: (endpoints: string[], relay: string | undefined) => Promise<void>;
  /** The coordinator's endpoints at discovery now (throws the agent's removal, if its record says so). */
  lookup?: () => Promise<string[]>;
  /** For tests: the waits between looks for a direct path while relayed. */
  directRetryMs?: readonly number[];
}

export class Spoke {
  /** Set once the interface is up. */
  private tunnel: Tunnel = new NoTunnel();
  /** The relay's end, while the tunnel goes through it. */
  private relay: AgentRelay | undefined;
  private retry: NodeJS.Timeout | undefined;
  private retries = 0;
  /** Path changes one at a time: a reconnect and a look for a direct path must not interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: SpokeOptions) {}

  private get off(): boolean {
    return this.options.mode === "off";
  }

  /** The relay's host, as logs and status name it. */
  get relayHost(): string {
    return new URL(this.options.mesh.discoveryUrl).host;
  }

  /** Brings the interface up (wireguard-go starts in a process of its own as this is called). */
  async up(keys: WireGuardKeyPair, interfaceName: string): Promise<void> {
    if (this.off) return;
    const { mesh, mode, log } = this.options;
    this.tunnel = await WireGuardInterface.up({
      name: interfaceName,
      privateKey: keys.privateKey,
      ...(mesh.listenPort ? { listenPort: mesh.listenPort } : {}),
      address: `${mesh.answer.meshIp}/32`,
      routes: [mesh.answer.meshPrefix],
      mode: mode as Exclude<typeof mode, "off">,
      onEvent: (event) => log(`wireguard: ${event.message}`),
    });
  }

  /**
   * Reaches the hub at the endpoints it had: how long the handshake took, or undefined when
   * none was seen. What worked goes first next time.
   */
  async connect(): Promise<number | undefined> {
    if (this.off) return undefined;
    const { mesh } = this.options;
    const connecting = Date.now();
    const through = await this.reach(mesh.answer.endpoints, { signal: this.options.signal });
    if (through === undefined) return undefined;
    if (!this.relay && mesh.answer.endpoints[0] !== through) {
      mesh.answer.endpoints = [through, ...mesh.answer.endpoints.filter((e) => e !== through)];
      saveMeshState(this.options.dataDir, mesh);
    }
    return Date.now() - connecting;
  }

  /** Shakes hands anew from a fresh peer entry, even if the tunnel shook hands moments ago. */
  async reconnect(): Promise<void> {
    if (this.off) return;
    await this.reach(this.options.mesh.answer.endpoints, { signal: this.options.signal, fresh: true });
  }

  /** The hub is at these endpoints now (discovery says so): try them, and keep them for the next start. */
  async moveTo(endpoints: string[]): Promise<void> {
    if (!this.off) await this.reach(endpoints, {});
    this.options.mesh.answer.endpoints = endpoints;
    saveMeshState(this.options.dataDir, this.options.mesh);
  }

  async down(): Promise<void> {
    this.stopped = true;
    this.leaveRelay();
    await this.tunnel.down();
  }

  private hub(endpoints: string[]): HubPeer {
    const { answer } = this.options.mesh;
    return { publicKey: answer.coordinatorWireguardKey, endpoints, meshIp: answer.coordinatorMeshIp, allowedIps: [answer.meshPrefix] };
  }

  private exclusive<T>(step: () => Promise<T>): Promise<T> {
    const run = this.queue.then(step, step);
    this.queue = run.catch(() => {});
    return run;
  }

  private reach(endpoints: string[], how: { signal?: AbortSignal | undefined; fresh?: boolean }): Promise<string | undefined> {
    return this.exclusive(async () => {
      const ticket = currentRelayTicket(this.options.mesh);
      const strategies: PathStrategy[] = [direct, this.viaDiscovery, ...(ticket ? [this.viaRelay] : [])];
      const through = await connect(
        this.hub(endpoints),
        {
          tunnel: this.tunnel,
          log: this.options.log,
          ...(how.signal ? { signal: how.signal } : {}),
          ...(how.fresh ? { fresh: true } : {}),
          ...(ticket ? { quietMs: QUIET_MS } : {}),
        },
        strategies,
      );
      if (through !== undefined && through !== this.relay?.endpoint) this.leaveRelay();
      if (through === undefined && !how.signal?.aborted) await this.options.onNoPath?.(endpoints, ticket ? this.relayHost : undefined);
      return through;
    });
  }

  /**
   * After `direct`: the coordinator may have moved (another address or port) while this agent
   * was away. Its record at discovery says where it is now; if that is elsewhere, direct again
   * there, before the relay. A removal in the record is thrown (the agent stops).
   */
  private readonly viaDiscovery: PathStrategy = {
    name: "discovery",
    reach: async (hub, context) => {
      const now = await this.rediscover(hub.endpoints);
      return now ? direct.reach({ ...hub, endpoints: now }, context) : undefined;
    },
  };

  /** The coordinator's endpoints at discovery, kept for the next start, if they are not among `known`. */
  private async rediscover(known: string[]): Promise<string[] | undefined> {
    const { lookup, log, mesh, dataDir } = this.options;
    if (!lookup) return undefined;
    let now: string[];
    try {
      now = await lookup();
    } catch (error) {
      if (error instanceof CoralError && error.code === "agent_removed") throw error;
      log(`looking the coordinator up at discovery failed: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
    if (now.length === 0 || now.every((e) => known.includes(e))) return undefined;
    log(`discovery has the coordinator at ${now.join(", ")} now; trying there`);
    mesh.answer.endpoints = now;
    saveMeshState(dataDir, mesh);
    return now;
  }

  /** The relay, as the strategy after `direct`: the relay's end is opened, and kept while it carries the tunnel. */
  private readonly viaRelay: PathStrategy = {
    name: "relay",
    reach: async (hub, context) => {
      const { mesh, log } = this.options;
      if (!this.relay) {
        const { listenPort } = await this.tunnel.status();
        log(`trying the relay at ${this.relayHost}`);
        const opened = await AgentRelay.open({
          url: relayUrl(mesh.discoveryUrl, mesh.meshId),
          // The newest ticket at each dial: the coordinator renews it while the tunnel is up.
          headers: async () => agentRelayHeaders(currentRelayTicket(mesh) ?? ""),
          wireguardPort: listenPort,
          log,
          // Back after the relay was away: the network changed somewhere, and a direct path may
          // have come with it; the looks for one start over.
          onOpen: (connects) => {
            if (connects > 1 && this.relay) this.scheduleDirect(true);
          },
        });
        // Stopped meanwhile: nothing is to stay open.
        if (this.stopped || context.signal?.aborted) {
          opened.close();
          return undefined;
        }
        this.relay = opened;
      }
      const relay = this.relay;
      if (await throughRelay(relay, this.relayHost, hub, context)) {
        if (this.stopped || this.relay !== relay) return undefined;
        this.scheduleDirect(true);
        return relay.endpoint;
      }
      this.leaveRelay();
      // WireGuard keeps trying in the background: toward the best direct guess, not the relay's closed socket.
      const [best] = hub.endpoints;
      if (best)
        await this.tunnel.setPeer({
          publicKey: hub.publicKey,
          endpoint: best,
          allowedIps: hub.allowedIps,
          persistentKeepalive: KEEPALIVE_SECONDS,
        });
      return undefined;
    },
  };

  private leaveRelay(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    this.relay?.close();
    this.relay = undefined;
  }

  /** While relayed, looks for a direct path after the next wait (returned, in ms). */
  private scheduleDirect(first = false): number {
    if (first) this.retries = 0;
    clearTimeout(this.retry);
    const waits = this.options.directRetryMs ?? DIRECT_RETRY_MS;
    const wait = waits[Math.min(this.retries++, waits.length - 1)] ?? 300_000;
    this.retry = setTimeout(() => void this.exclusive(() => this.lookForDirect()), wait);
    this.retry.unref?.();
    return wait;
  }

  private async lookForDirect(): Promise<void> {
    const relay = this.relay;
    if (!relay || this.stopped) return;
    // Where the hub is now (it may have moved, or been given a forwarded port). Its address as
    // seen from outside goes first, and it is the one a relayed agent can use if any (the others
    // are on the hub's own network, where no relay would be needed).
    // (A removal is the session's to act on: the hub dropped the peer, heartbeats fail, and it looks too.)
    await this.rediscover(this.options.mesh.answer.endpoints).catch(() => {});
    const hub = this.hub(this.options.mesh.answer.endpoints.slice(0, 1));
    // The hub may have made the move already: WireGuard follows what it receives, and what the
    // hub sent straight here took the peer off the relay.
    // (Only if the hub answers through it: a path may let one way in and not the other.)
    const probe = tcpProbe(this.options.mesh.answer.grpcPort);
    const now = (await peerOf(this.tunnel, hub.publicKey))?.endpoint;
    const already =
      now && now !== relay.endpoint && (await probe(hub.meshIp)) ? (await peerOf(this.tunnel, hub.publicKey))?.endpoint : undefined;
    const found = already && already !== relay.endpoint ? already : await probeDirect(this.tunnel, hub, relay.endpoint, probe);
    if (this.relay !== relay || this.stopped) return;
    if (found) {
      this.options.log(`a direct path to the coordinator came up, through ${found}: leaving the relay`);
      this.leaveRelay();
      return;
    }
    const next = this.scheduleDirect();
    this.options.log(`still no direct path to the coordinator through ${hub.endpoints.join(", ")}; looking again in ${next / 1000} s`);
  }
}
