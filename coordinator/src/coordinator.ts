/**
 * `coral coordinator start`: the hub of a mesh. It owns the identity and the store in its
 * data directory, brings up the WireGuard interface (restoring every enrolled agent as a
 * peer, so agents come back without re-joining), serves the agent service on its mesh
 * address and the HTTP API on loopback, keeps its record at discovery fresh, and answers
 * join requests.
 */
import { createSocket } from "node:dgram";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import {
  type CoordinatorConfig,
  CoralError,
  coordinatorConfigSchema,
  DiscoveryClient,
  parseConfigFile,
  parseDuration,
} from "@coral/sdk-proto";
import { type InterfaceStatus, WireGuardInterface } from "@coral/wireguard";
import { serve } from "@hono/node-server";
import { and, eq, gt, isNull, lt } from "drizzle-orm";
import { checkApiExposure, createApiApp } from "./api/app.js";
import { API_FILE, readApiFile, writeApiFile } from "./api-file.js";
import { loadOrCreateIdentity } from "./identity.js";
import { COORDINATOR_ADDRESS } from "./mesh/allocation.js";
import { Enrollment } from "./mesh/enrollment.js";
import { DiscoveryRegistrar } from "./mesh/registrar.js";
import { MeshWatcher } from "./mesh/watcher.js";

export { API_FILE, type ApiFile, readApiFile } from "./api-file.js";

import { startAgentService } from "./rpc/agent-service.js";
import { EDGE_WRITE_EVERY_MS, prepareIngest } from "./rpc/ingest.js";
import { Bus } from "./store/bus.js";
import { openStore, type Store } from "./store/db.js";
import { type Observe, observer } from "./store/observations.js";
import { applyRetention, DEFAULT_RETENTION, type Retention } from "./store/retention.js";
import { Rollups } from "./store/rollups.js";
import { agents, tokens } from "./store/schema.js";

export { applyRetention, DEFAULT_RETENTION, type Retention } from "./store/retention.js";

export const DEFAULTS = {
  interfaceName: "coral0",
  listenPort: 51820,
  grpcPort: 51821,
  apiHost: "127.0.0.1",
  apiPort: 51822,
  heartbeatIntervalMs: 10_000,
} as const;

/** How often the store folds minutes and hours, and drops what is past its retention. */
const ROLLUP_EVERY_MS = 60_000;
const RETENTION_EVERY_MS = 10 * 60_000;

/** How often join requests are fetched from discovery: quickly only while a join is likely. */
export const JOIN_POLL = { eagerMs: 250, eagerForMs: 10 * 60_000, activeTokenMs: 5_000, idleMs: 30_000 } as const;

export const CONFIG_FILE = "coordinator.json";
export const STORE_FILE = "coral.db";

export interface CoordinatorOptions {
  dataDir: string;
  /** Flags; each overrides the same field of `coordinator.json` in the data directory. */
  discoveryUrl?: string;
  interfaceName?: string;
  listenPort?: number;
  /** Where agents reach the hub (host:port), best first; detected when absent. */
  endpoints?: string[];
  grpcPort?: number;
  apiHost?: string;
  /** 0 picks a free port. */
  apiPort?: number;
  apiToken?: string;
  heartbeatIntervalMs?: number;
  /** How long raw samples are kept; the other retentions come from `coordinator.json`. */
  metricsRetentionMs?: number;
  /** `off`: no WireGuard; agents on this machine reach the agent service over loopback. */
  wireguardMode?: "auto" | "kernel" | "userspace" | "off";
  /** Progress and what happens; one line each. */
  log?: (line: string) => void;
}

export interface RunningCoordinator {
  meshId: string;
  apiUrl: string;
  wireguard: Tunnel;
  db: Store;
  /** What the store learns, as it learns it. */
  bus: Bus;
  stop(): Promise<void>;
}

export async function startCoordinator(options: CoordinatorOptions): Promise<RunningCoordinator> {
  const log = options.log ?? (() => {});
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const settings = resolveSettings(options);
  refuseSecondInstance(options.dataDir);

  const { identity, created } = await loadOrCreateIdentity(options.dataDir);
  log(
    created
      ? `created a new mesh in ${options.dataDir}: mesh id ${identity.meshId}`
      : `mesh ${identity.meshId} (data in ${options.dataDir})`,
  );
  const db = openStore(join(options.dataDir, STORE_FILE));
  const bus = new Bus(log);
  const observe = observer(db, bus);
  const cleanups: Array<() => Promise<void> | void> = [
    () => {
      db.$client.close();
    },
  ];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        log(`while stopping: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  };

  try {
    checkApiExposure(settings.apiHost, settings.apiToken);
    const discovery = new DiscoveryClient({ url: settings.discoveryUrl });

    const loopback = options.wireguardMode === "off";
    if (loopback) log("WireGuard off: agents on this machine only, over loopback, identified by name (a trial, not a mesh)");
    else log(`bringing up WireGuard interface ${settings.interfaceName} (${COORDINATOR_ADDRESS}/10, UDP ${settings.listenPort})...`);
    const wireguard: Tunnel = loopback
      ? new NoTunnel()
      : await WireGuardInterface.up({
          name: settings.interfaceName,
          privateKey: identity.wireguard.privateKey,
          listenPort: settings.listenPort,
          address: `${COORDINATOR_ADDRESS}/10`,
          mode: (options.wireguardMode ?? "auto") as "auto" | "kernel" | "userspace",
          onEvent: (event) => log(`wireguard: ${event.message}`),
        });
    cleanups.push(() => wireguard.down());
    const enrolled = db.select({ key: agents.wireguardKey, meshIp: agents.meshIp, endpoint: agents.endpoint }).from(agents).all();
    await wireguard.setPeers(
      enrolled.map((a) => ({
        publicKey: a.key,
        allowedIps: [`${a.meshIp}/32`],
        ...(a.endpoint ? { endpoint: a.endpoint, persistentKeepalive: 25 } : {}),
      })),
    );
    if (!loopback) {
      log(`WireGuard ${settings.interfaceName} is up (${wireguard.mode}); ${enrolled.length} enrolled agent(s) restored as peers`);
    }
    await nudge(enrolled.filter((a) => a.endpoint).map((a) => a.meshIp));
    const endpoints = setInterval(() => void recordEndpoints(db, wireguard, observe).catch(() => {}), 10_000);
    endpoints.unref();
    const reviver = loopback ? undefined : new Reviver(db, wireguard, settings.heartbeatIntervalMs);
    const revive = setInterval(() => void reviver?.tick().catch(() => {}), 5_000);
    revive.unref();
    cleanups.push(async () => {
      clearInterval(endpoints);
      clearInterval(revive);
      await recordEndpoints(db, wireguard, observe);
    });

    const serviceHost = loopback ? "127.0.0.1" : COORDINATOR_ADDRESS;
    const ingest = prepareIngest(db, bus);
    // After the agent service has stopped (cleanups run in reverse): the last reports' edge counts.
    cleanups.push(() => ingest.flush());
    const agentService = await startAgentService({
      ingest,
      db,
      host: serviceHost,
      port: settings.grpcPort,
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      trustClaimedName: loopback,
      bus,
      observe,
    });
    cleanups.push(() => agentService.close());
    log(`agent service (gRPC) on ${serviceHost}:${agentService.port}, ${loopback ? "this machine only" : "the mesh only"}`);

    const registrar = new DiscoveryRegistrar({
      discovery,
      signing: identity.signing,
      registration: () => ({
        v: 1,
        wireguardKey: identity.wireguard.publicKey,
        listenPort: settings.listenPort,
        endpoints: advertisedEndpoints(),
        name:
          hostname()
            .replace(/[^\x20-\x7e]/g, "?")
            .slice(0, 64) || "coordinator",
      }),
      log: (line) => log(line),
    });
    const advertisedEndpoints = (): string[] => {
      if (settings.endpoints.length > 0) return settings.endpoints;
      const detected = localAddresses(settings.interfaceName).map((ip) => `${ip}:${settings.listenPort}`);
      // Discovery's view of us is our NAT's public address; with a forwarded port, or a NAT
      // that keeps ports, it is the way in. It goes first: agents across the internet
      // outnumber those on the hub's own network, and each candidate tried costs them time.
      const observed = registrar.state.observedAddress;
      const fromOutside = observed && !observed.includes(":") ? [`${observed}:${settings.listenPort}`] : [];
      return [...new Set([...fromOutside, ...detected])].slice(0, 8);
    };

    const joinPoller = new JoinPoller(
      new Enrollment({
        db,
        discovery,
        identity,
        addPeer: async (peer) => {
          const spec = { publicKey: peer.publicKey, allowedIps: [`${peer.meshIp}/32`] };
          // The endpoint alone sends nothing yet: see punch().
          await wireguard.setPeer(peer.endpoint ? { ...spec, endpoint: peer.endpoint } : spec);
          if (peer.endpoint) {
            void punch(wireguard, { ...spec, endpoint: peer.endpoint }).then(
              (outcome) => log(`new agent at ${peer.meshIp}: ${outcome}`),
              (error: unknown) =>
                log(`new agent at ${peer.meshIp}: sending toward it failed: ${error instanceof Error ? error.message : String(error)}`),
            );
          }
        },
        endpoints: advertisedEndpoints,
        grpcPort: agentService.port,
        heartbeatIntervalMs: settings.heartbeatIntervalMs,
        log,
        observe,
      }),
      db,
      log,
    );

    const app = createApiApp({
      db,
      identity,
      discoveryUrl: settings.discoveryUrl,
      mesh: { address: COORDINATOR_ADDRESS, listenPort: settings.listenPort },
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      discoveryState: () => registrar.state,
      loopback,
      peers: async () => {
        const status = await wireguard.status();
        return new Map(status.peers.map((p) => [p.publicKey, { endpoint: p.endpoint, latestHandshake: p.latestHandshake }]));
      },
      removePeer: (key) => wireguard.removePeer(key),
      onTokenCreated: () => joinPoller.hurry(),
      observe,
      ...(settings.apiToken ? { token: settings.apiToken } : {}),
    });
    const api = await listen(app.fetch, settings.apiHost, settings.apiPort);
    cleanups.push(() => api.close());
    const apiUrl = `http://${settings.apiHost.includes(":") ? `[${settings.apiHost}]` : settings.apiHost}:${api.port}`;
    writeApiFile(options.dataDir, {
      url: apiUrl,
      pid: process.pid,
      meshId: identity.meshId,
      startedAt: Date.now(),
      ...(settings.apiToken ? { token: settings.apiToken } : {}),
    });
    cleanups.push(() => rmSync(join(options.dataDir, API_FILE), { force: true }));
    log(`API on ${apiUrl}${settings.apiToken ? " (token required)" : " (loopback only)"}`);

    log(`registering with discovery at ${settings.discoveryUrl}...`);
    await registrar.registerOnce();
    registrar.start();
    cleanups.push(() => registrar.stop());
    joinPoller.start();
    cleanups.push(() => joinPoller.stop());

    const rollups = new Rollups(db);
    const watcher = new MeshWatcher({
      db,
      observe,
      bus,
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      discoveryState: () => registrar.state,
    });
    const jobs = [
      every("retention", RETENTION_EVERY_MS, () => applyRetention(db, settings.retention, Date.now()), log),
      every("rollups", ROLLUP_EVERY_MS, () => rollups.pass(Date.now()), log),
      every("edge counts", EDGE_WRITE_EVERY_MS, () => ingest.flush(), log),
      every("health watch", Math.max(1_000, settings.heartbeatIntervalMs / 2), () => watcher.pass(Date.now()), log),
    ];
    cleanups.push(() => {
      for (const stop of jobs) stop();
    });

    return { meshId: identity.meshId, apiUrl, wireguard, db, bus, stop: cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/**
 * Sends one one-byte datagram to each agent through the tunnel. The hub restarted without
 * sessions; a packet to send makes WireGuard shake hands with the agent's last known
 * endpoint at once, instead of waiting until the agent notices that its session went
 * stale (15 s or more).
 */
async function nudge(meshIps: string[]): Promise<void> {
  if (meshIps.length === 0) return;
  const socket = createSocket("udp4");
  await Promise.all(meshIps.map((ip) => new Promise<void>((done) => socket.send(Buffer.from([0]), DISCARD_PORT, ip, () => done()))));
  socket.close();
}
const DISCARD_PORT = 9;

/** What the coordinator needs of its WireGuard interface. */
export type Tunnel = Pick<WireGuardInterface, "mode" | "setPeer" | "setPeers" | "removePeer" | "status" | "down">;

/** `--wireguard off`: no interface, no peers; every agent is on this machine. */
class NoTunnel implements Tunnel {
  readonly mode = "userspace" as const;
  async setPeer(): Promise<void> {}
  async setPeers(): Promise<void> {}
  async removePeer(): Promise<void> {}
  async status(): Promise<InterfaceStatus> {
    return { publicKey: "", listenPort: 0, peers: [] };
  }
  async down(): Promise<void> {}
}

/**
 * For a newly joined agent, the hub sends toward it too, so that a filtering NAT in front
 * of the hub lets the agent's handshake in, and so that a hub behind a NAT that maps per
 * destination can shake hands at all (by an agent that accepts what comes in).
 *
 * It starts PUNCH_DELAY_MS after the answer, about when the agent (polling for the answer
 * every 250 ms) has its interface up and sends too: a packet from the hub that reaches the
 * agent's NAT first is dropped there, and on a Linux router without an input firewall it
 * would even take the public port the agent's own mapping needs. Then, until a handshake
 * and for up to 30 s, a fresh peer entry every PUNCH_RETRY_MS, doubling: WireGuard sends a
 * new handshake at most every 5 s for one peer entry, however many packets wait. A peer
 * that has heard from the agent is left alone to finish its handshake. Keepalives stay on,
 * which also holds the hub's own NAT open toward the agent.
 */
async function punch(wireguard: Tunnel, spec: { publicKey: string; allowedIps: string[]; endpoint: string }): Promise<string> {
  const started = Date.now();
  const since = Math.floor(started / 1000) * 1000;
  const keepalive = { publicKey: spec.publicKey, allowedIps: spec.allowedIps, persistentKeepalive: 25 };
  let wait = PUNCH_RETRY_MS;
  let sent = 0;
  await new Promise((r) => setTimeout(r, PUNCH_DELAY_MS));
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; wait = Math.min(2 * wait, 2_000)) {
    const peer = (await wireguard.status()).peers.find((p) => p.publicKey === spec.publicKey);
    if (!peer) return "the agent was removed meanwhile";
    if ((peer.latestHandshake ?? 0) >= since) {
      // Through (the agent's own handshake, perhaps): keepalives on, at the address it came from.
      if (peer.persistentKeepalive === null) await wireguard.setPeer(keepalive);
      return `handshake through ${peer.endpoint ?? spec.endpoint} ${Date.now() - started} ms after its answer (${sent} sent from here)`;
    }
    if (peer.rxBytes === 0) {
      await wireguard.removePeer(spec.publicKey);
      // Turning keepalives on sends one at once, and with it a handshake.
      await wireguard.setPeer({ ...keepalive, endpoint: spec.endpoint });
      sent++;
    }
    await new Promise((r) => setTimeout(r, wait));
  }
  return `no handshake within 30 s (${sent} sent toward ${spec.endpoint}); WireGuard keeps trying`;
}
const PUNCH_DELAY_MS = 300;
const PUNCH_RETRY_MS = 250;

/**
 * Shakes hands anew with agents that went quiet. WireGuard itself never does for a peer it
 * only sends keepalives to: after an agent restarts, the hub's old session looks alive to
 * the hub for up to three minutes. Where the agent cannot reach the hub first (a hub behind
 * a symmetric NAT), that is how long the agent would stay cut off. So, for an agent silent
 * for more than two heartbeat intervals, the hub replaces its peer entry at the last known
 * endpoint and sends a packet, at most every 15 s per agent, for ten minutes.
 */
class Reviver {
  private readonly last = new Map<string, number>();
  constructor(
    private readonly db: Store,
    private readonly wireguard: Tunnel,
    private readonly heartbeatIntervalMs: number,
  ) {}

  async tick(): Promise<void> {
    const now = Date.now();
    const quiet = this.db
      .select({ key: agents.wireguardKey, meshIp: agents.meshIp, lastHeartbeatAt: agents.lastHeartbeatAt })
      .from(agents)
      .all()
      // Recently lost only: past ten minutes WireGuard's own session expiry has long made
      // it shake hands again, and a mesh full of switched-off agents costs nothing.
      .filter(
        (a) => a.lastHeartbeatAt !== null && now - a.lastHeartbeatAt > 2 * this.heartbeatIntervalMs && now - a.lastHeartbeatAt < 600_000,
      );
    if (quiet.length === 0) return;
    const peers = new Map((await this.wireguard.status()).peers.map((p) => [p.publicKey, p]));
    for (const agent of quiet) {
      const peer = peers.get(agent.key);
      if (!peer?.endpoint || now - (this.last.get(agent.key) ?? 0) < 15_000) continue;
      this.last.set(agent.key, now);
      await this.wireguard.removePeer(agent.key);
      await this.wireguard.setPeer({
        publicKey: agent.key,
        allowedIps: [`${agent.meshIp}/32`],
        endpoint: peer.endpoint,
        persistentKeepalive: 25,
      });
      await nudge([agent.meshIp]);
    }
  }
}

/**
 * Runs `job` now and every `everyMs`, one run at a time; a failure is logged with the job's
 * name, and the next run comes all the same.
 */
function every(name: string, everyMs: number, job: () => unknown, log: (line: string) => void): () => void {
  let running = false;
  const run = async () => {
    if (running) return;
    running = true;
    try {
      await job();
    } catch (error) {
      log(`${name} failed: ${error instanceof Error ? error.message : String(error)} (will run again in ${Math.round(everyMs / 1000)} s)`);
    } finally {
      running = false;
    }
  };
  void run();
  const timer = setInterval(() => void run(), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Remembers where each agent was last seen, so that a restarted hub can reach it first; a change is an event. */
async function recordEndpoints(db: Store, wireguard: Tunnel, observe: Observe): Promise<void> {
  const { peers } = await wireguard.status();
  const known = new Map(
    db
      .select({ key: agents.wireguardKey, name: agents.name, endpoint: agents.endpoint })
      .from(agents)
      .all()
      .map((a) => [a.key, a]),
  );
  const changed = peers.filter((p) => p.endpoint && known.has(p.publicKey) && known.get(p.publicKey)?.endpoint !== p.endpoint);
  if (changed.length === 0) return;
  const at = Date.now();
  db.transaction((tx) => {
    for (const peer of changed) tx.update(agents).set({ endpoint: peer.endpoint }).where(eq(agents.wireguardKey, peer.publicKey)).run();
  });
  for (const peer of changed) {
    const agent = known.get(peer.publicKey);
    if (!agent?.endpoint || !peer.endpoint) continue; // the first endpoint learnt is no change of path
    observe({
      kind: "agent.path_changed",
      agent: agent.name,
      subject: { kind: "agent", id: agent.name, name: agent.name },
      attributes: { from: agent.endpoint, to: peer.endpoint },
      time: at,
    });
  }
}

interface Settings {
  discoveryUrl: string;
  interfaceName: string;
  listenPort: number;
  endpoints: string[];
  grpcPort: number;
  apiHost: string;
  apiPort: number;
  apiToken: string | undefined;
  heartbeatIntervalMs: number;
  retention: Retention;
}

/** Flags over `coordinator.json` over defaults; the discovery URL is remembered once given. */
function resolveSettings(options: CoordinatorOptions): Settings {
  const file = join(options.dataDir, CONFIG_FILE);
  let config: CoordinatorConfig = {};
  if (existsSync(file)) {
    const parsed = parseConfigFile(readFileSync(file, "utf8"), coordinatorConfigSchema, file);
    if (!parsed.ok) {
      throw new CoralError("config_invalid", parsed.errors.map((e) => `${file}${e.path ? ` ${e.path}` : ""}: ${e.message}`).join("; "));
    }
    config = parsed.value;
  }
  const discoveryUrl = options.discoveryUrl ?? config.discovery;
  if (!discoveryUrl) {
    throw new CoralError(
      "config_invalid",
      "No discovery URL: pass --discovery URL (your Worker, e.g. https://coral-discovery.NAME.workers.dev) on the first start; it is remembered.",
    );
  }
  if (!/^https?:\/\/[^/]+/.test(discoveryUrl)) {
    throw new CoralError("config_invalid", `--discovery ${discoveryUrl} is not an http(s) URL.`);
  }
  if (options.discoveryUrl && config.discovery !== options.discoveryUrl) {
    writeFileSync(file, `${JSON.stringify({ ...config, discovery: options.discoveryUrl }, null, 2)}\n`, { mode: 0o600 });
  }
  const duration = (value: string | undefined, field: string): number | undefined => {
    if (value === undefined) return undefined;
    const ms = parseDuration(value);
    if (ms === undefined) throw new CoralError("config_invalid", `${file} ${field}: "${value}" is not a duration like 10s or 7d.`);
    return ms;
  };
  return {
    discoveryUrl: discoveryUrl.replace(/\/+$/, ""),
    interfaceName: options.interfaceName ?? config.interface ?? DEFAULTS.interfaceName,
    listenPort: options.listenPort ?? config.listenPort ?? DEFAULTS.listenPort,
    endpoints: options.endpoints?.length ? options.endpoints : (config.endpoints ?? []),
    grpcPort: options.grpcPort ?? config.grpcPort ?? DEFAULTS.grpcPort,
    apiHost: options.apiHost ?? config.api?.host ?? DEFAULTS.apiHost,
    apiPort: options.apiPort ?? config.api?.port ?? DEFAULTS.apiPort,
    apiToken: options.apiToken ?? config.api?.token,
    heartbeatIntervalMs:
      options.heartbeatIntervalMs ?? duration(config.heartbeatInterval, "heartbeatInterval") ?? DEFAULTS.heartbeatIntervalMs,
    retention: {
      rawMs:
        options.metricsRetentionMs ??
        duration(config.retention?.raw, "retention.raw") ??
        duration(config.metricsRetention, "metricsRetention") ??
        DEFAULT_RETENTION.rawMs,
      minuteMs: duration(config.retention?.minute, "retention.minute") ?? DEFAULT_RETENTION.minuteMs,
      hourMs: duration(config.retention?.hour, "retention.hour") ?? DEFAULT_RETENTION.hourMs,
      eventsMs: duration(config.retention?.events, "retention.events") ?? DEFAULT_RETENTION.eventsMs,
      inventoryMs: duration(config.retention?.inventory, "retention.inventory") ?? DEFAULT_RETENTION.inventoryMs,
    },
  };
}

/** One coordinator per data directory: a live pid in `api.json` means another one runs. */
function refuseSecondInstance(dataDir: string): void {
  const existing = readApiFile(dataDir);
  if (existing && existing.pid !== process.pid && isAlive(existing.pid)) {
    throw new CoralError(
      "coordinator_running",
      `A coordinator (pid ${existing.pid}) already runs with ${dataDir}; stop it first, or use another --data-dir.`,
    );
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** This machine's IPv4 addresses other agents might reach, skipping loopback and the mesh itself. */
function localAddresses(meshInterface: string): string[] {
  return Object.entries(networkInterfaces())
    .filter(([name]) => name !== meshInterface)
    .flatMap(([, addresses]) => addresses ?? [])
    .filter((a) => a.family === "IPv4" && !a.internal)
    .map((a) => a.address);
}

async function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  hostname: string,
  port: number,
): Promise<{ port: number; close(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, hostname, port }, (info: AddressInfo) =>
      resolve({
        port: info.port,
        close: () => new Promise<void>((done) => server.close(() => done())),
      }),
    );
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "EADDRINUSE"
          ? new CoralError("config_invalid", `The API port ${hostname}:${port} is taken; choose another with --api-port.`)
          : error,
      ),
    );
  });
}

/**
 * Fetches join requests from discovery. Requests only arrive when someone holds an
 * invite, so it polls every quarter second for ten minutes after a token is made or a
 * join happens, every 5 s while any token is usable, and every 30 s otherwise: a join
 * waits a quarter second at most while one is expected, and an idle mesh costs
 * discovery almost nothing.
 */
class JoinPoller {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = true;
  private eagerUntil = 0;
  private lastError: string | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly enrollment: Enrollment,
    private readonly db: Store,
    private readonly log: (line: string) => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.eagerUntil = Date.now() + JOIN_POLL.eagerForMs;
    this.schedule(0);
  }

  /** A token was just made: look often, starting now. */
  hurry(): void {
    this.eagerUntil = Date.now() + JOIN_POLL.eagerForMs;
    if (!this.running && !this.stopped) this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.poll().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.schedule(this.interval());
      });
    }, delayMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    try {
      const results = await this.enrollment.pollOnce();
      if (results.length > 0) this.eagerUntil = Date.now() + JOIN_POLL.eagerForMs;
      if (this.lastError) this.log("join requests: discovery answers again");
      this.lastError = undefined;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (message !== this.lastError) this.log(`join requests: ${message} (will retry)`);
      this.lastError = message;
    }
  }

  private interval(): number {
    const now = Date.now();
    if (now < this.eagerUntil) return JOIN_POLL.eagerMs;
    const usable = this.db
      .select({ id: tokens.id })
      .from(tokens)
      .where(and(isNull(tokens.revokedAt), gt(tokens.expiresAt, now), lt(tokens.uses, tokens.maxUses)))
      .get();
    return usable ? JOIN_POLL.activeTokenMs : JOIN_POLL.idleMs;
  }
}
