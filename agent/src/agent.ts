/**
 * The agent runtime: joins (once), brings up its WireGuard spoke, registers with the
 * coordinator over the mesh, runs its plugins, and gets everything they emit to the
 * coordinator through the durable spool: collected into a batch, written to disk, sent,
 * and removed only when acknowledged. Each of those is a module of its own (data-dir,
 * spoke, session, plugin-hosts, batching, delivery); this is how they fit together.
 */
import { randomUUID } from "node:crypto";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import type { PluginReport } from "@coral-mesh/agent-plugins";
import { DiscoveryClient, fromBase64Url, removalMark } from "@coral-mesh/sdk-proto";
import { checkWireGuard } from "@coral-mesh/wireguard";
import { CONNECT_TIMEOUT_MS, DEFAULT_INTERFACE, isMeshAddress } from "@coral-mesh/wireguard/path";
import packageJson from "../package.json" with { type: "json" };
import { Batcher } from "./batching.js";
import { type Clock, sleep, systemClock } from "./clock.js";
import { CoordinatorClient } from "./coordinator-client.js";
import { claimDataDir, loadOrJoin, releaseDataDir } from "./data-dir.js";
import { Delivery } from "./delivery.js";
import { removedError, StoppedError } from "./errors.js";
import { nodeHttpTransport } from "./http.js";
import { loadOrCreateKeys, type MeshState, saveMeshState } from "./join.js";
import { explainNoPath } from "./no-path.js";
import { PluginHosts } from "./plugin-hosts.js";
import type { LoadedPlugin } from "./plugins.js";
import { relayTicketDue } from "./relay-ticket.js";
import { Session } from "./session.js";
import { Spoke } from "./spoke.js";
import { Spool, type SpoolLimits } from "./spool.js";

export { StoppedError } from "./errors.js";

export interface AgentOptions {
  dataDir: string;
  invite?: string;
  name?: string;
  interfaceName?: string;
  plugins: LoadedPlugin[];
  /** Overrides the interval the coordinator asks for. */
  heartbeatIntervalMs?: number;
  /** How long what plugins emit outside a collect waits before it becomes a batch (1 s). */
  flushIntervalMs?: number;
  spoolLimits?: SpoolLimits;
  /** `off`: no WireGuard; the coordinator runs on this machine with `--wireguard off`. */
  wireguardMode?: "auto" | "kernel" | "userspace" | "off";
  procRoot?: string;
  log?: (line: string) => void;
  /** Aborting it while the agent starts (still reaching the coordinator) stops that. */
  signal?: AbortSignal;
}

/** How long a stopping agent waits for its last batches to be acknowledged. */
const LAST_SEND_MS = 2_000;

interface Parts {
  clock: Clock;
  client: CoordinatorClient;
  spool: Spool;
  spoke: Spoke;
  session: Session;
  plugins: PluginHosts;
  batcher: Batcher;
  delivery: Delivery;
}

export class Agent {
  private stopped = false;

  private constructor(
    private readonly options: AgentOptions,
    readonly mesh: MeshState,
    private readonly parts: Parts,
  ) {}

  static async start(options: AgentOptions): Promise<Agent> {
    const log = options.log ?? (() => {});
    const clock = systemClock;
    const mode = options.wireguardMode ?? "auto";
    const off = mode === "off";
    // Before an invite is spent (and before anything is created): an agent that cannot run
    // WireGuard must not take a token's use.
    if (!off) await checkWireGuard({ mode });
    const keys = loadOrCreateKeys(options.dataDir);
    claimDataDir(options.dataDir);
    const mesh = await loadOrJoin({ dataDir: options.dataDir, invite: options.invite, name: options.name, keys, log });
    const { answer } = mesh;
    const discovery = new DiscoveryClient({ url: mesh.discoveryUrl, transport: nodeHttpTransport });
    const mark = removalMark(keys.publicKey);
    /** The coordinator's record now, verified against the pinned key; a removal of this agent is thrown. */
    const lookup = async () => {
      const record = await discovery.lookup(mesh.meshId, fromBase64Url(mesh.signingKey) ?? new Uint8Array());
      if (record.registration.removed?.includes(mark)) throw removedError(mesh.name, mesh.meshId);
      return record;
    };
    const behindNat = answer.observedAddress === null || !hostAddresses().includes(answer.observedAddress);
    const onNoPath = async (endpoints: string[], relay: string | undefined) => {
      const found = await lookup().then(
        () => ({ ok: true as const }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      log(
        explainNoPath({
          endpoints,
          relay,
          timeoutSeconds: CONNECT_TIMEOUT_MS / 1000,
          lookup: found,
          behindNat,
          reachedBefore: mesh.reachedAt !== undefined,
          discoveryUrl: mesh.discoveryUrl,
        }),
      );
    };
    let agent: Agent | undefined;

    const client = new CoordinatorClient(`${off ? "127.0.0.1" : answer.coordinatorMeshIp}:${answer.grpcPort}`, mesh.name);
    const spool = new Spool(join(options.dataDir, "spool"), options.spoolLimits, log);
    const spoke = new Spoke({
      dataDir: options.dataDir,
      mesh,
      mode,
      log,
      onNoPath,
      lookup: async () => (await lookup()).registration.endpoints,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    // Session and delivery call on each other, and on the plugins: only once all of them exist.
    const delivery = new Delivery({ spool, rpc: client, clock, log, onAcked: () => session.contact() });
    const batcher = new Batcher({
      clock,
      ...(options.flushIntervalMs !== undefined ? { flushDelayMs: options.flushIntervalMs } : {}),
      onBatch: (batch) => {
        spool.append(batch);
        void delivery.send();
      },
    });
    const plugins = new PluginHosts({
      plugins: options.plugins,
      dataDir: options.dataDir,
      ...(options.procRoot ? { procRoot: options.procRoot } : {}),
      log,
      emitterFor: (name) => batcher.emitterFor(name),
      onCollected: () => batcher.flush(),
      onStateChange: () => session.pluginsChanged(),
    });
    const session = new Session({
      rpc: client,
      clock,
      log,
      ...(options.signal ? { signal: options.signal } : {}),
      runId: randomUUID(),
      self: {
        agentName: mesh.name,
        agentVersion: packageJson.version,
        hostname: hostname(),
        os: process.platform,
        arch: process.arch,
        addresses: hostAddresses(),
      },
      pluginStates: () => plugins.states(),
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? answer.heartbeatIntervalMs,
      heartbeatIntervalFixed: Boolean(options.heartbeatIntervalMs),
      reconnect: () => spoke.reconnect(),
      lookup: async () => (await lookup()).registration.endpoints,
      moveTo: (endpoints) => spoke.moveTo(endpoints),
      onBack: () => void delivery.send(), // what was spooled meanwhile, without waiting for the retry timer
      onRemoved: (error) => void agent?.end(error),
      onRelayTicket: (ticket) => {
        if (mesh.relayTicket === ticket) return;
        mesh.relayTicket = ticket;
        saveMeshState(options.dataDir, mesh);
      },
      relayTicketDue: () => relayTicketDue(mesh, Date.now()),
    });
    const parts: Parts = { clock, client, spool, spoke, session, plugins, batcher, delivery };
    agent = new Agent(options, mesh, parts);

    if (off) log("WireGuard off: reaching the coordinator over loopback, on this machine");
    // wireguard-go first (it starts in a process of its own), then the plugins, which start
    // and collect once meanwhile, so that registering tells the coordinator they run. What
    // they emit before that is spooled.
    const tunnel = spoke.up(keys, options.interfaceName ?? DEFAULT_INTERFACE.agent);
    const pluginsStarted = plugins.start();
    try {
      await tunnel;
      // Set when a handshake was seen just now: see Session.register().
      const handshakeMs = await spoke.connect();
      if (options.signal?.aborted) throw new StoppedError("stopped while connecting");
      await agent.run(pluginsStarted, handshakeMs);
      return agent;
    } catch (error) {
      await pluginsStarted.catch(() => {});
      await agent.stopPlugins(); // what they emitted stays spooled for the next start
      spool.close();
      client.close();
      await spoke.down();
      throw error;
    }
  }

  get pluginReports(): PluginReport[] {
    return this.parts.plugins.reports;
  }

  private get log(): (line: string) => void {
    return this.options.log ?? (() => {});
  }

  private async run(pluginsStarted: Promise<void>, handshakeMs: number | undefined): Promise<void> {
    const { session, delivery } = this.parts;
    const registered = await session.register(handshakeMs);
    if (this.mesh.reachedAt === undefined) {
      this.mesh.reachedAt = Date.now();
      saveMeshState(this.options.dataDir, this.mesh);
    }
    delivery.start();
    this.log(
      `registered with the coordinator at ${this.mesh.answer.coordinatorMeshIp} (it has stored up to batch ${registered.lastAckedSequence})`,
    );
    await pluginsStarted;
    void session.heartbeat(); // only if a plugin's state changed since registering

    // Nothing else wakes an idle agent: collects are spooled and sent as each one ends,
    // what start/stop plugins emit is spooled a moment after it arrives, a failed send
    // is retried on its own timer, and a heartbeat goes only after a silence.
    void delivery.send(); // whatever the spool kept, from before a restart or from the plugins' start
  }

  /** Stops the plugins and spools what they emitted. */
  private async stopPlugins(): Promise<void> {
    await this.parts.plugins.stop();
    this.parts.batcher.flush();
  }

  private endWith!: (error: Error) => void;
  /** Settles when the agent stopped by itself: with why (it was removed from the mesh). */
  readonly ended: Promise<Error> = new Promise((resolve) => {
    this.endWith = resolve;
  });

  /** The coordinator removed this agent: it says so, stops, and `ended` settles. */
  private async end(error: Error): Promise<void> {
    if (this.stopped) return;
    this.log("removed from the mesh by its coordinator: stopping");
    await this.stop();
    this.endWith(error);
  }

  /** Stops plugins, spools what they emitted, sends what it can in a moment, and leaves the interface clean. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const { clock, session, delivery, client, spool, spoke } = this.parts;
    session.stop();
    delivery.stop();
    await this.stopPlugins();
    await Promise.race([delivery.send(), sleep(clock, LAST_SEND_MS)]);
    client.close();
    spool.close();
    await spoke.down();
    releaseDataDir(this.options.dataDir);
    this.log(`stopped; ${spool.size.batches} batch(es) wait in the spool for the next start`);
  }

  /** Turns what plugins emitted since the last flush into a spooled batch, and sends it. */
  flush(): void {
    this.parts.batcher.flush();
  }

  /** Sends spooled batches, oldest first, until the spool is empty or a call fails; one drain at a time. */
  send(): Promise<void> {
    return this.parts.delivery.send();
  }
}

/** This host's own addresses, for the coordinator to resolve other agents' connections to: loopback and the mesh's left out. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .filter((a) => !a.internal && !isMeshAddress(a.address))
    .map((a) => a.address);
}
