/**
 * The agent runtime: joins (once), brings up its WireGuard spoke, registers with the
 * coordinator over the mesh, runs its plugins, and gets everything they emit to the
 * coordinator through the durable spool: collected into a batch, written to disk, sent,
 * and removed only when acknowledged.
 */
import { randomUUID } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { CollectGrid, type Emitter, PluginHost, type PluginReport, type PluginStateStore, type Subject } from "@coral/agent-plugins";
import { CoralError, DiscoveryClient, fromBase64Url } from "@coral/sdk-proto";
import { meshV1 } from "@coral/sdk-proto/grpc";
import { checkWireGuard, WireGuardInterface } from "@coral/wireguard";
import { credentials, Metadata, makeGenericClientConstructor, type ServiceError, status } from "@grpc/grpc-js";
import packageJson from "../package.json" with { type: "json" };
import { nodeHttpTransport } from "./http.js";
import { defaultAgentName, freeUdpPort, joinMesh, loadMeshState, loadOrCreateKeys, type MeshState, saveMeshState } from "./join.js";
import type { LoadedPlugin } from "./plugins.js";
import { type EncodedReport, type ReportCall, ReportStream } from "./report-stream.js";
import { encodeReportRequest, type NewBatch, Spool, type SpoolLimits } from "./spool.js";

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

/** Agent.start gave up because its `signal` was aborted; everything it set up is undone. */
export class StoppedError extends Error {
  override readonly name = "StoppedError";
}

const SUBJECT_KINDS = { agent: 1, service: 2, process: 3, host: 4 } as const;
const PLUGIN_STATUS = { starting: 1, running: 2, degraded: 3, failed: 4, stopped: 5 } as const;
const RELOOKUP_MIN_MS = 60_000;
const RELOOKUP_MAX_MS = 600_000;
const FLUSH_DELAY_MS = 1_000;
/** How long the agent tries to reach the coordinator before it reports that it cannot. */
const CONNECT_TIMEOUT_MS = 10_000;
/** How long one endpoint gets for a handshake; rounds repeat until CONNECT_TIMEOUT_MS. */
const ATTEMPT_MS = 250;
const SEND_RETRY_MS = 5_000;
/** How long a report waits for its answer. */
const REPORT_TIMEOUT_MS = 10_000;
/**
 * The least time the first register gets through a tunnel that has just shaken hands (else
 * four times what the handshake took). The coordinator answers in tens of milliseconds here;
 * a link slow enough to need more costs one handshake more, nothing else.
 */
const FIRST_REGISTER_MIN_MS = 750;
/**
 * How often connect() looks for the handshake, which on a LAN comes within a few ms: each
 * look (a request on wireguard-go's socket) costs the agent about a tenth of a millisecond, so
 * the pause grows with the time an attempt has waited (a fifth of it, 2 to 100 ms). A
 * handshake is seen soon after it lands, and an agent that cannot get through costs its
 * host little while it keeps trying.
 */
const HANDSHAKE_POLL_MS = { min: 2, max: 100, ofWaited: 1 / 5 } as const;
const handshakePollMs = (waitedMs: number) =>
  Math.min(HANDSHAKE_POLL_MS.max, Math.max(HANDSHAKE_POLL_MS.min, Math.round(waitedMs * HANDSHAKE_POLL_MS.ofWaited)));
const NUDGE_EVERY_MS = 100;
/** How long the coordinator's packets may arrive without a handshake before this side starts one (see connect()). */
const STALLED_MS = 1_000;
/**
 * A heartbeat goes after this many heartbeat intervals without contact (a report answered
 * counts). An agent that reports every interval thus sends none, and wakes for none; the
 * coordinator calls an agent unhealthy only after two intervals of silence.
 */
const HEARTBEAT_AFTER_SILENCE = 1.25;

export class Agent {
  private readonly hosts: PluginHost[] = [];
  private client: meshV1.AgentServiceClient;
  /** The next heartbeat, due after a silence (see HEARTBEAT_AFTER_SILENCE); armed again at every contact. */
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private current: NewBatch = emptyBatch();
  /** Spools what a start/stop plugin emitted outside a collect, a moment later. */
  private flushTimer: NodeJS.Timeout | undefined;
  /** Sends again after a failed send. */
  private retryTimer: NodeJS.Timeout | undefined;
  private sending: Promise<void> | undefined;
  /** Reports go over one stream (see ReportStream), or, to a coordinator without it, one call each. */
  private readonly reports: ReportStream;
  private streamReports = true;
  private sendFailures = 0;
  private lastRelookup = 0;
  private relookupBackoffMs = RELOOKUP_MIN_MS;
  private heartbeatFailures = 0;
  /** When the coordinator last answered a heartbeat or a report. */
  private lastContact = 0;
  /** This run of the agent process, told at register and in each heartbeat (see RegisterRequest.run_id). */
  private readonly runId = randomUUID();
  /** The plugin states the coordinator last heard. */
  private reportedPlugins = "";
  /** Nothing is sent before the coordinator heard of this run (plugins start meanwhile). */
  private registered = false;
  private stopped = false;
  /** Set once the interface is up. */
  private wireguard: Tunnel = NO_TUNNEL;

  private constructor(
    private readonly options: AgentOptions,
    readonly mesh: MeshState,
    private readonly newClient: () => meshV1.AgentServiceClient,
    private readonly spool: Spool,
    private heartbeatIntervalMs: number,
  ) {
    this.client = newClient();
    this.reports = new ReportStream(() => (this.client.reportStream as unknown as (metadata: Metadata) => ReportCall)(this.metadata()));
  }

  /**
   * A new gRPC channel. One whose connection died with the tunnel (a coordinator restart, a
   * cut cable) may sit in TCP's retransmission backoff for half a minute after the tunnel is
   * back; a new one connects at once.
   */
  private renewChannel(): void {
    this.reports.close();
    this.client.close();
    this.client = this.newClient();
  }

  static async start(options: AgentOptions): Promise<Agent> {
    const log = options.log ?? (() => {});
    const keys = loadOrCreateKeys(options.dataDir);
    claimDataDir(options.dataDir);
    // Before an invite is spent: an agent that cannot run WireGuard must not take a token's use.
    const off = options.wireguardMode === "off";
    if (!off) await checkWireGuard({ mode: (options.wireguardMode ?? "auto") as "auto" | "kernel" | "userspace" });
    let mesh = loadMeshState(options.dataDir);
    if (mesh && options.invite) log(`already a member of mesh ${mesh.meshId} as ${mesh.name}; --join is not needed again`);
    if (!mesh) {
      if (!options.invite) {
        throw new CoralError(
          "invite_malformed",
          `This agent has not joined a mesh yet (nothing in ${options.dataDir}): start it with --join INVITE.`,
        );
      }
      mesh = await joinMesh({
        invite: options.invite,
        name: options.name ?? defaultAgentName(),
        keys,
        agentVersion: packageJson.version,
        listenPort: await freeUdpPort(),
        progress: log,
      });
      saveMeshState(options.dataDir, mesh);
    }
    const { answer } = mesh;

    const coordinator = off ? "127.0.0.1" : answer.coordinatorMeshIp;
    const client = () =>
      new AgentClient(`${coordinator}:${answer.grpcPort}`, credentials.createInsecure(), {
        // grpc-js backs off up to 2 minutes between reconnects by default: after the
        // coordinator restarts, the agent would sit that long on a tunnel that works again.
        "grpc.initial_reconnect_backoff_ms": 500,
        "grpc.max_reconnect_backoff_ms": 5_000,
      });
    const spool = new Spool(join(options.dataDir, "spool"), options.spoolLimits, log);
    const agent = new Agent(options, mesh, client, spool, options.heartbeatIntervalMs ?? answer.heartbeatIntervalMs);
    if (off) log("WireGuard off: reaching the coordinator over loopback, on this machine");
    // wireguard-go first (it starts in a process of its own), then the plugins, which start
    // and collect once meanwhile, so that registering tells the coordinator they run. What
    // they emit before that is spooled.
    const tunnel = off
      ? Promise.resolve(NO_TUNNEL)
      : WireGuardInterface.up({
          name: options.interfaceName ?? "coral1",
          privateKey: keys.privateKey,
          ...(mesh.listenPort ? { listenPort: mesh.listenPort } : {}),
          address: `${answer.meshIp}/32`,
          routes: [answer.meshPrefix],
          mode: (options.wireguardMode ?? "auto") as "auto" | "kernel" | "userspace",
          onEvent: (event) => log(`wireguard: ${event.message}`),
        });
    const pluginsStarted = agent.startPlugins();
    // Set when a handshake was seen just now: see register().
    let handshakeMs: number | undefined;
    try {
      agent.wireguard = await tunnel;
      if (!off) {
        const connecting = Date.now();
        const through = await connect(
          agent.wireguard,
          answer.coordinatorWireguardKey,
          answer.endpoints,
          answer.coordinatorMeshIp,
          log,
          options.signal,
        );
        if (through !== undefined) handshakeMs = Date.now() - connecting;
        if (through && answer.endpoints[0] !== through) {
          // The next start tries first what worked this time.
          answer.endpoints = [through, ...answer.endpoints.filter((e) => e !== through)];
          saveMeshState(options.dataDir, mesh);
        }
      }
      if (options.signal?.aborted) throw new StoppedError("stopped while connecting");
      await agent.run(pluginsStarted, handshakeMs);
      return agent;
    } catch (error) {
      await pluginsStarted.catch(() => {});
      await agent.stopPlugins(); // what they emitted stays spooled for the next start
      agent.spool.close();
      agent.client.close();
      await agent.wireguard.down();
      throw error;
    }
  }

  get pluginReports(): PluginReport[] {
    return this.hosts.map((h) => h.report);
  }

  private get log(): (line: string) => void {
    return this.options.log ?? (() => {});
  }

  private async run(pluginsStarted: Promise<void>, handshakeMs: number | undefined): Promise<void> {
    const registered = await this.register(handshakeMs);
    this.registered = true;
    if (!this.options.heartbeatIntervalMs) this.heartbeatIntervalMs = registered.heartbeatIntervalMs || this.heartbeatIntervalMs;
    this.contact();
    this.log(
      `registered with the coordinator at ${this.mesh.answer.coordinatorMeshIp} (it has stored up to batch ${registered.lastAckedSequence})`,
    );
    await pluginsStarted;
    void this.heartbeat(); // only if a plugin's state changed since registering

    // Nothing else wakes an idle agent: collects are spooled and sent as each one ends,
    // what start/stop plugins emit is spooled a moment after it arrives, a failed send
    // is retried on its own timer, and a heartbeat goes only after a silence.
    void this.send(); // whatever the spool kept, from before a restart or from the plugins' start
  }

  private async startPlugins(): Promise<void> {
    const stateDir = join(this.options.dataDir, "plugins");
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    // One grid for all: plugins with the same interval collect in the same moment, and the agent wakes once for them.
    const grid = new CollectGrid();
    for (const loaded of this.options.plugins) {
      this.hosts.push(
        new PluginHost({
          plugin: loaded.plugin,
          options: loaded.options,
          emit: this.batchEmitter(loaded.plugin.name),
          log: pluginLogger(loaded.plugin.name, this.log),
          state: new FileState(join(stateDir, `${loaded.plugin.name}.json`)),
          grid,
          ...(this.options.procRoot ? { procRoot: this.options.procRoot } : {}),
          onCollected: () => this.flush(),
          onReport: (report) => {
            this.log(`plugin ${report.name}: ${report.status}${report.lastError ? ` (${report.lastError})` : ""}`);
            if (this.lastContact > 0) void this.heartbeat(); // the coordinator hears of it at once
          },
        }),
      );
    }
    await Promise.all(this.hosts.map((host) => host.start()));
  }

  /** Stops the plugins and spools what they emitted. */
  private async stopPlugins(): Promise<void> {
    await Promise.all(this.hosts.map((host) => host.stop()));
    this.flush();
  }

  /** Stops plugins, spools what they emitted, sends what it can in a moment, and leaves the interface clean. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.retryTimer);
    await this.stopPlugins();
    await Promise.race([this.send(), new Promise((r) => setTimeout(r, 2_000))]);
    this.reports.close();
    this.spool.close();
    this.client.close();
    await this.wireguard.down();
    rmSync(join(this.options.dataDir, PID_FILE), { force: true });
    this.log(`stopped; ${this.spool.size.batches} batch(es) wait in the spool for the next start`);
  }

  /** Turns what plugins emitted since the last flush into a spooled batch. */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batch = this.current;
    if (batch.events.length + batch.metrics.length + batch.connections.length === 0) return;
    this.current = emptyBatch();
    this.spool.append({ ...batch, createdAtUnixMs: Date.now() });
    void this.send();
  }

  /** Sends spooled batches, oldest first, until the spool is empty or a call fails; one drain at a time. */
  send(): Promise<void> {
    // `.finally` always runs asynchronously, so `sending` is cleared only after it was set.
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined;
    });
    return this.sending;
  }

  private async drain(): Promise<void> {
    if (!this.registered) return;
    try {
      for (;;) {
        const batches = this.spool.pendingEncoded(100);
        if (batches.length === 0) return;
        const response = await this.report(batches);
        if (!response) continue; // the coordinator has no ReportStream: sent again, as a Report call
        this.spool.ack(response.ackedSequences);
        this.contact();
        if (this.sendFailures > 0) this.log(`reports reach the coordinator again; ${this.spool.size.batches} batch(es) still spooled`);
        this.sendFailures = 0;
      }
    } catch (error) {
      this.sendFailures++;
      if (this.sendFailures === 1) this.log(`sending reports failed (${describe(error)}); they stay spooled and are retried`);
      if (!this.stopped && !this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          void this.send();
        }, SEND_RETRY_MS);
      }
    }
  }

  /**
   * Registers, retrying until it works. After a handshake seen just now (`handshakeMs`), the
   * first attempt gets four times that (FIRST_REGISTER_MIN_MS at least), not the usual 5 s,
   * and a failure shakes hands again at once; without one, discovery may know better (see
   * relookup()).
   */
  private async register(handshakeMs: number | undefined): Promise<meshV1.RegisterResponse> {
    let delay = 500;
    let timeoutMs = handshakeMs === undefined ? 5_000 : Math.min(5_000, Math.max(FIRST_REGISTER_MIN_MS, 4 * handshakeMs));
    let afterHandshake = handshakeMs !== undefined;
    for (;;) {
      try {
        const plugins = this.pluginStates();
        const response = await this.call<meshV1.RegisterRequest, meshV1.RegisterResponse>(
          "register",
          {
            agentName: this.mesh.name,
            agentVersion: packageJson.version,
            hostname: hostname(),
            os: process.platform,
            arch: process.arch,
            plugins,
            sentAtUnixMs: Date.now(),
            runId: this.runId,
            addresses: hostAddresses(),
          },
          timeoutMs,
        );
        this.reportedPlugins = JSON.stringify(plugins);
        return response;
      } catch (error) {
        if (this.options.signal?.aborted) throw new StoppedError("stopped while registering");
        this.renewChannel();
        const waited = timeoutMs;
        timeoutMs = 5_000;
        if (afterHandshake) {
          // Shaken hands moments ago, and yet no answer: the hub may have replaced its peer
          // entry for this agent (its punch) just as the handshake landed, which leaves this
          // side a session the hub no longer has, for 15 s. A fresh handshake mends that now.
          afterHandshake = false;
          this.log(`no answer from the coordinator within ${waited} ms of the handshake; shaking hands again`);
          const { answer } = this.mesh;
          await connect(
            this.wireguard,
            answer.coordinatorWireguardKey,
            answer.endpoints,
            answer.coordinatorMeshIp,
            this.log,
            this.options.signal,
            {
              fresh: true,
            },
          );
          continue;
        }
        this.log(`registering with the coordinator failed (${describe(error)}); retrying in ${delay / 1000} s`);
        await this.relookup();
        await new Promise((r) => {
          const timer = setTimeout(r, delay);
          this.options.signal?.addEventListener("abort", () => {
            clearTimeout(timer);
            r(undefined);
          });
        });
        if (this.options.signal?.aborted) throw new StoppedError("stopped while registering");
        delay = Math.min(30_000, delay * 2);
      }
    }
  }

  /**
   * Tells the coordinator the agent is alive and how its plugins are: after a silence (the
   * coordinator counts each report as a heartbeat, so an agent that reports every collect
   * sends none), and at once when a plugin's state changed. Skipped when neither holds.
   */
  private async heartbeat(): Promise<void> {
    const plugins = this.pluginStates();
    const key = JSON.stringify(plugins);
    if (key === this.reportedPlugins && Date.now() - this.lastContact < this.heartbeatIntervalMs) return;
    clearTimeout(this.heartbeatTimer);
    try {
      await this.call("heartbeat", { sentAtUnixMs: Date.now(), plugins, runId: this.runId }, 5_000);
      this.contact();
      this.reportedPlugins = key;
      if (this.heartbeatFailures > 0) {
        this.log("heartbeats reach the coordinator again");
        void this.send(); // what was spooled meanwhile, without waiting for the retry timer
      }
      this.heartbeatFailures = 0;
      this.relookupBackoffMs = RELOOKUP_MIN_MS;
    } catch (error) {
      this.heartbeatFailures++;
      this.armHeartbeat(this.heartbeatIntervalMs); // tried again each interval while it fails
      if (this.heartbeatFailures === 1) this.log(`heartbeat failed: ${describe(error)}`);
      if (this.heartbeatFailures % 3 === 0) {
        this.renewChannel();
        await this.relookup();
      }
    }
  }

  /**
   * After three heartbeats in a row failed, the coordinator may have moved (another address
   * or port): look its record up again at discovery, verified against the pinned key, and
   * try the endpoints it has now. At most once a minute, backing off to every ten minutes
   * while it keeps failing, so a coordinator that is simply down costs discovery little.
   */
  private async relookup(): Promise<void> {
    const now = Date.now();
    if (now - this.lastRelookup < this.relookupBackoffMs) return;
    this.lastRelookup = now;
    this.relookupBackoffMs = Math.min(RELOOKUP_MAX_MS, this.relookupBackoffMs * 2);
    try {
      const record = await new DiscoveryClient({ url: this.mesh.discoveryUrl, transport: nodeHttpTransport }).lookup(
        this.mesh.meshId,
        fromBase64Url(this.mesh.signingKey) ?? new Uint8Array(),
      );
      const endpoints = record.registration.endpoints;
      this.log(`no answer from the coordinator; trying the endpoints discovery has now: ${endpoints.join(", ") || "none"}`);
      if (endpoints.length > 0) {
        if (this.options.wireguardMode !== "off")
          await connect(this.wireguard, this.mesh.answer.coordinatorWireguardKey, endpoints, this.mesh.answer.coordinatorMeshIp, this.log);
        // The next start begins with what discovery says now.
        this.mesh.answer.endpoints = endpoints;
        saveMeshState(this.options.dataDir, this.mesh);
      }
    } catch (error) {
      this.log(`looking the coordinator up again failed: ${describe(error)}`);
    }
  }

  private pluginStates(): meshV1.PluginState[] {
    return this.hosts.map((host) => {
      const report = host.report;
      return {
        name: report.name,
        version: report.version,
        status: PLUGIN_STATUS[report.status],
        lastError: report.lastError ?? "",
        sinceUnixMs: report.since,
      };
    });
  }

  /** One report over the stream (or a call); undefined when the stream turned out not to be served. */
  private async report(batches: Uint8Array[]): Promise<meshV1.ReportResponse | undefined> {
    if (!this.streamReports)
      return this.call<EncodedReport, meshV1.ReportResponse>("report", { batches, sentAtUnixMs: Date.now() }, REPORT_TIMEOUT_MS);
    try {
      return await this.reports.send(batches, REPORT_TIMEOUT_MS);
    } catch (error) {
      if ((error as Partial<ServiceError>).code !== status.UNIMPLEMENTED) throw error;
      this.streamReports = false;
      this.log("the coordinator does not serve ReportStream (an older version); reporting one call per batch");
      return undefined;
    }
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    metadata.set("coral-agent", this.mesh.name);
    return metadata;
  }

  private call<Req, Res>(method: "register" | "heartbeat" | "report", request: Req, timeoutMs: number): Promise<Res> {
    const metadata = this.metadata();
    const fn = this.client[method] as unknown as (
      request: Req,
      metadata: Metadata,
      options: { deadline: number },
      callback: (error: ServiceError | null, response: Res) => void,
    ) => void;
    return new Promise((resolve, reject) =>
      fn.call(this.client, request, metadata, { deadline: Date.now() + timeoutMs }, (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
  }

  /** Spools what arrived outside a collect (from start/stop plugins) within FLUSH_DELAY_MS. */
  private flushSoon(): void {
    this.flushTimer ??= setTimeout(() => this.flush(), this.options.flushIntervalMs ?? FLUSH_DELAY_MS);
  }

  /** What one plugin emits goes into the batch under way, marked as that plugin's. */
  private batchEmitter(source: string): Emitter {
    const subject = (s: Subject | undefined) => (s ? { kind: SUBJECT_KINDS[s.kind], id: s.id, name: s.name ?? "" } : undefined);
    return {
      event: (e) => {
        this.flushSoon();
        this.current.events.push({
          kind: e.kind,
          timeUnixMs: e.time ?? Date.now(),
          subject: subject(e.subject),
          attributes: e.attributes ?? {},
          evidenceJson: e.evidence === undefined ? "{}" : JSON.stringify(e.evidence),
          source,
        });
      },
      metric: (m) => {
        this.flushSoon();
        this.current.metrics.push({
          name: m.name,
          value: m.value,
          timeUnixMs: m.time ?? Date.now(),
          subject: subject(m.subject),
          labels: m.labels ?? {},
          source,
        });
      },
      connection: (c) => {
        this.flushSoon();
        this.current.connections.push({
          protocol: c.protocol ?? "tcp",
          localAddress: c.localAddress,
          localPort: c.localPort,
          remoteAddress: c.remoteAddress,
          remotePort: c.remotePort,
          pid: c.pid ?? 0,
          processName: c.processName ?? "",
          subject: subject(c.subject),
          observedAtUnixMs: c.time ?? Date.now(),
          source,
        });
      },
    };
  }

  /** The coordinator answered: the next heartbeat is due only after a silence. */
  private contact(): void {
    this.lastContact = Date.now();
    this.armHeartbeat(this.heartbeatIntervalMs * HEARTBEAT_AFTER_SILENCE);
  }

  private armHeartbeat(delayMs: number): void {
    clearTimeout(this.heartbeatTimer);
    if (this.stopped) return;
    this.heartbeatTimer = setTimeout(() => void this.heartbeat(), delayMs);
  }
}

/** The coordinator's AgentService, whose `report` and `reportStream` take an `EncodedReport` (see encodeReportRequest). */
const encoded = (value: EncodedReport) => encodeReportRequest(value.batches, value.sentAtUnixMs);
const AgentClient = makeGenericClientConstructor(
  {
    ...meshV1.AgentServiceService,
    report: { ...meshV1.AgentServiceService.report, requestSerialize: encoded },
    reportStream: { ...meshV1.AgentServiceService.reportStream, requestSerialize: encoded },
  },
  "coral.mesh.v1.AgentService",
) as unknown as typeof meshV1.AgentServiceClient;

const PID_FILE = "agent.pid";

/** What the agent needs of its WireGuard interface (nothing, with `--wireguard off`). */
interface Tunnel {
  down(): Promise<void>;
  setPeer(peer: Parameters<WireGuardInterface["setPeer"]>[0]): Promise<void>;
  removePeer(publicKey: string): Promise<void>;
  status(): Promise<{ peers: Array<{ publicKey: string; endpoint: string | null; latestHandshake: number | null; rxBytes: number }> }>;
}
const NO_TUNNEL: Tunnel = {
  down: async () => {},
  setPeer: async () => {},
  removePeer: async () => {},
  status: async () => ({ peers: [] }),
};

/** One agent per data directory: a live pid in `agent.pid` means another one runs. */
function claimDataDir(dataDir: string): void {
  const path = join(dataDir, PID_FILE);
  try {
    const pid = Number(readFileSync(path, "utf8"));
    if (pid !== process.pid && isAlive(pid)) {
      throw new CoralError(
        "agent_running",
        `An agent (pid ${pid}) already runs with ${dataDir}; stop it first, or use another --data-dir.`,
      );
    }
  } catch (error) {
    if (error instanceof CoralError) throw error;
  }
  writeFileSync(path, String(process.pid), { mode: 0o600 });
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function emptyBatch(): NewBatch {
  return { createdAtUnixMs: 0, events: [], metrics: [], connections: [] };
}

/**
 * Finds a way to the coordinator: each endpoint in turn gets a fresh peer entry (so that
 * WireGuard sends its handshake at once rather than after its 5 s retry timer) and a
 * quarter of a second (a second in later rounds) to complete a handshake, round after
 * round, for up to CONNECT_TIMEOUT_MS. What works is kept. Meanwhile the coordinator sends toward this agent
 * too, which is what opens a filtering NAT in front of it. If nothing answers, it says
 * plainly why that may be, and WireGuard keeps trying the best guess in the background.
 */
async function connect(
  wireguard: Tunnel,
  publicKey: string,
  endpoints: string[],
  coordinatorMeshIp: string,
  log: (line: string) => void,
  signal?: AbortSignal,
  { fresh: forceFresh = false }: { fresh?: boolean } = {},
): Promise<string | undefined> {
  const socket = createSocket("udp4");
  const started = Date.now();
  try {
    if (endpoints.length === 0) {
      log("the coordinator has no endpoint to try; WireGuard waits for it to reach this agent");
      return undefined;
    }
    log(`connecting to the coordinator at ${endpoints.join(" or ")}`);
    // A tunnel that shook hands moments ago works (after a restart of the coordinator, its
    // hub may well have shaken hands first): leave it be.
    const existing = (await wireguard.status()).peers.find((p) => p.publicKey === publicKey);
    if (!forceFresh && existing?.latestHandshake && Date.now() - existing.latestHandshake < 5_000) {
      log(`tunnel up through ${existing.endpoint ?? endpoints[0]}`);
      return existing.endpoint ?? undefined;
    }
    // A fresh peer: no session from before, nothing received yet.
    if (existing) await wireguard.removePeer(publicKey);
    // Handshake times have a resolution of one second.
    const since = Math.floor(Date.now() / 1000) * 1000;
    let fresh = true;
    /** Where the coordinator's packets came from, once they have. */
    let learned: string | undefined;
    /** Since when they arrive at the peer entry now set, with no handshake yet. */
    let arrivingSince: number | undefined;
    let saidStalled = false;
    for (let round = 0; Date.now() - started < CONNECT_TIMEOUT_MS; round++) {
      for (const endpoint of endpoints) {
        if (signal?.aborted || Date.now() - started >= CONNECT_TIMEOUT_MS) break;
        // (At the first attempt there is no peer entry yet.)
        const current = fresh ? undefined : (await wireguard.status()).peers.find((p) => p.publicKey === publicKey);
        // Once the coordinator's packets arrive (it sends toward an agent that just joined),
        // the peer is left alone to finish that handshake, at the address they came from;
        // but for STALLED_MS at most. A handshake message lost either way would otherwise
        // wait for WireGuard's retry, 5 s later: this side starts one instead, toward there.
        const arriving = (current?.rxBytes ?? 0) > 0;
        if (arriving) {
          learned = current?.endpoint ?? learned;
          arrivingSince ??= Date.now();
        }
        const stalled = arriving && Date.now() - (arrivingSince as number) >= STALLED_MS;
        if (!arriving || stalled) {
          if (stalled && !saidStalled) {
            log(`the coordinator's packets arrive from ${learned ?? endpoint} but no handshake came of them; starting one from here`);
            saidStalled = true;
          }
          if (!fresh) await wireguard.removePeer(publicKey);
          await wireguard.setPeer({ publicKey, endpoint: learned ?? endpoint, allowedIps: ["100.64.0.0/10"], persistentKeepalive: 25 });
          arrivingSince = undefined;
        }
        fresh = false;
        // Slower rounds after the first few, for paths with a long round trip.
        const attemptStarted = Date.now();
        const deadline = Math.min(started + CONNECT_TIMEOUT_MS, attemptStarted + Math.min(4 * ATTEMPT_MS, ATTEMPT_MS * 2 ** round));
        // A packet to send is what makes WireGuard shake hands; with none it would wait.
        let nudged = 0;
        while (Date.now() < deadline) {
          if (Date.now() - nudged >= NUDGE_EVERY_MS) {
            socket.send(Buffer.from([0]), 9, coordinatorMeshIp);
            nudged = Date.now();
          }
          await new Promise((r) => setTimeout(r, handshakePollMs(Date.now() - attemptStarted)));
          const peer = (await wireguard.status()).peers.find((p) => p.publicKey === publicKey);
          if ((peer?.latestHandshake ?? 0) >= since) {
            // Where the coordinator's packets came from: what it sent toward this agent may
            // have got through while another candidate was being tried.
            const through = peer?.endpoint ?? endpoint;
            log(`tunnel up through ${through} in ${Date.now() - started} ms`);
            return through;
          }
          if ((peer?.rxBytes ?? 0) > 0) {
            arrivingSince ??= Date.now();
            if (Date.now() - arrivingSince >= STALLED_MS) break; // to the next attempt, which starts a handshake
          }
        }
      }
    }
    if (signal?.aborted) return undefined;
    log(
      `no direct path to the coordinator: no handshake through ${endpoints.join(", ")} in ${CONNECT_TIMEOUT_MS / 1000} s. ` +
        "If the coordinator runs, both it and this host are behind NATs that only let in replies (symmetric, or port-restricted facing symmetric): " +
        "such a pair needs a relay, which Coral does not have yet; give the coordinator a public address or a forwarded UDP port. WireGuard keeps trying meanwhile.",
    );
    return undefined;
  } finally {
    socket.close();
  }
}

/** This host's own addresses, for the coordinator to resolve other agents' connections to: loopback and the mesh's left out. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .filter((a) => !a.internal && !/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./.test(a.address))
    .map((a) => a.address);
}

function pluginLogger(name: string, log: (line: string) => void) {
  const at = (level: string) => (message: string) => log(`[${name}] ${level}: ${message}`);
  return { debug: () => {}, info: at("info"), warn: at("warn"), error: at("error") };
}

function describe(error: unknown): string {
  const e = error as { details?: string; message?: string };
  return e.details || e.message || String(error);
}

/** A plugin's persisted state: one small JSON file, written whole. */
class FileState implements PluginStateStore {
  private values: Record<string, unknown>;
  constructor(private readonly path: string) {
    try {
      this.values = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    } catch {
      this.values = {};
    }
  }
  get<T>(key: string): T | undefined {
    return this.values[key] as T | undefined;
  }
  set(key: string, value: unknown): void {
    const next = { ...this.values, [key]: value };
    const text = JSON.stringify(next);
    if (text.length > 65_536) throw new Error("plugin state is limited to 64 KiB");
    this.values = next;
    writeFileSync(this.path, text, { mode: 0o600 });
  }
  delete(key: string): void {
    const { [key]: _, ...rest } = this.values;
    this.values = rest;
    writeFileSync(this.path, JSON.stringify(rest), { mode: 0o600 });
  }
}
