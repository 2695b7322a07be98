/**
 * `coral coordinator start`: the hub of a mesh. It owns the identity and the store in its
 * data directory, brings up the WireGuard interface (restoring every enrolled agent as a
 * peer, so agents come back without re-joining), serves the agent service on its mesh
 * address and the HTTP API on loopback, keeps its record at discovery fresh, and answers
 * join requests. Each of those is a module of its own; this is their order.
 */

import { hostname } from "node:os";
import { join } from "node:path";
import { DiscoveryClient } from "@coral-mesh/sdk-proto";
import { checkInterfaceFree, checkWireGuard } from "@coral-mesh/wireguard";
import { COORDINATOR_ADDRESS, isRelaySocket, type Tunnel } from "@coral-mesh/wireguard/path";
import { Analysis } from "./analysis/host.js";
import { Notifier } from "./analysis/notify.js";
import { agentLister } from "./api/agent-views.js";
import { checkApiExposure, createApiApp } from "./api/app.js";
import { serveApi } from "./api/serve.js";
import { buildAskContext } from "./ask/context.js";
import { createAskService } from "./ask/service.js";
import { createAskTools } from "./ask/tools.js";
import { ensureDataDir, refuseSecondInstance, STORE_FILE } from "./data-dir.js";
import { existingWireguardKey, loadOrCreateIdentity } from "./identity.js";
import { advertisedEndpoints } from "./mesh/advertise.js";
import { RECORD_ENDPOINTS_EVERY_MS, recordEndpoints } from "./mesh/endpoints.js";
import { Enrollment } from "./mesh/enrollment.js";
import { bringUpHub, restorePeers, welcomer } from "./mesh/hub.js";
import { HubRelayLink } from "./mesh/hub-relay.js";
import { JoinPoller } from "./mesh/join-poller.js";
import { DiscoveryRegistrar } from "./mesh/registrar.js";
import { RelayTickets } from "./mesh/relay-tickets.js";
import { removedMarks } from "./mesh/removals.js";
import { REVIVE_EVERY_MS, Reviver } from "./mesh/reviver.js";
import { MeshWatcher } from "./mesh/watcher.js";
import { every } from "./periodic.js";
import { startAgentService } from "./rpc/agent-service.js";
import { EDGE_WRITE_EVERY_MS, prepareIngest } from "./rpc/ingest.js";
import { type CoordinatorOptions, rememberDiscovery, resolveSettings } from "./settings.js";
import { Bus } from "./store/bus.js";
import { openStore, type Store } from "./store/db.js";
import { findingsByIds } from "./store/finding-queries.js";
import { observer } from "./store/observations.js";
import { applyRetention } from "./store/retention.js";
import { Rollups } from "./store/rollups.js";

export type { Tunnel } from "@coral-mesh/wireguard/path";
export { API_FILE, type ApiFile, readApiFile, STORE_FILE } from "./data-dir.js";
export { JOIN_POLL } from "./mesh/join-poller.js";
export { CONFIG_FILE, type CoordinatorOptions, DEFAULTS } from "./settings.js";
export { applyRetention, DEFAULT_RETENTION, type Retention } from "./store/retention.js";

export interface RunningCoordinator {
  meshId: string;
  apiUrl: string;
  wireguard: Tunnel;
  db: Store;
  /** What the store learns, as it learns it. */
  bus: Bus;
  stop(): Promise<void>;
}

/** How often the store folds minutes and hours, and drops what is past its retention. */
const ROLLUP_EVERY_MS = 60_000;
const RETENTION_EVERY_MS = 10 * 60_000;

export async function startCoordinator(options: CoordinatorOptions): Promise<RunningCoordinator> {
  const log = options.log ?? (() => {});
  // Every check that can refuse the start comes before anything is created: a refused start
  // leaves no data directory, keys or config behind.
  const settings = resolveSettings(options);
  refuseSecondInstance(options.dataDir);
  checkApiExposure(settings.apiHost, settings.apiToken);
  const mode = options.wireguardMode ?? "auto";
  const loopback = mode === "off";
  if (mode !== "off") {
    await checkWireGuard({ mode });
    const privateKey = existingWireguardKey(options.dataDir);
    await checkInterfaceFree({ name: settings.interfaceName, listenPort: settings.listenPort, ...(privateKey ? { privateKey } : {}) });
  }
  ensureDataDir(options.dataDir);
  rememberDiscovery(options);

  const { identity, created } = await loadOrCreateIdentity(options.dataDir);
  log(
    created
      ? `created a new mesh in ${options.dataDir}: mesh id ${identity.meshId}`
      : `mesh ${identity.meshId} (data in ${options.dataDir})`,
  );
  const db = openStore(join(options.dataDir, STORE_FILE));
  const bus = new Bus(log);
  const observe = observer(db, bus);
  // Undone in reverse order, on stop and when starting fails halfway.
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
    const discovery = new DiscoveryClient({ url: settings.discoveryUrl });

    if (loopback) log("WireGuard off: agents on this machine only, over loopback, identified by name (a trial, not a mesh)");
    const wireguard = await bringUpHub({
      interfaceName: settings.interfaceName,
      listenPort: settings.listenPort,
      privateKey: identity.wireguard.privateKey,
      mode: options.wireguardMode ?? "auto",
      log,
    });
    cleanups.push(() => wireguard.down());
    const restored = await restorePeers(db, wireguard);
    if (!loopback) log(`WireGuard ${settings.interfaceName} is up (${wireguard.mode}); ${restored} enrolled agent(s) restored as peers`);
    // The mesh's relay, for agents with no direct path: open from the start, so that one that
    // needs it gets through at once.
    const relay = loopback
      ? undefined
      : new HubRelayLink({
          discoveryUrl: settings.discoveryUrl,
          meshId: identity.meshId,
          signing: identity.signing,
          listenPort: settings.listenPort,
          db,
          wireguard,
          observe,
          log,
        });
    if (relay) cleanups.push(() => relay.close());
    const endpoints = every("recording agent endpoints", RECORD_ENDPOINTS_EVERY_MS, () => recordEndpoints(db, wireguard, observe), {
      log,
    });
    const reviver = loopback ? undefined : new Reviver(db, wireguard, settings.heartbeatIntervalMs);
    const revive = reviver && every("reviving quiet agents", REVIVE_EVERY_MS, () => reviver.tick(), { log });
    cleanups.push(async () => {
      await Promise.all([endpoints.stop(), revive?.stop()]);
      await recordEndpoints(db, wireguard, observe);
    });

    const serviceHost = loopback ? "127.0.0.1" : COORDINATOR_ADDRESS;
    const ingest = prepareIngest(db, bus);
    // Runs after the agent service has stopped (cleanups run in reverse): the last reports' edge counts.
    cleanups.push(() => ingest.flush());
    const agentService = await startAgentService({
      db,
      ingest,
      bus,
      observe,
      host: serviceHost,
      port: settings.grpcPort,
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      trustClaimedName: loopback,
      // Agents on loopback have no path to find.
      ...(loopback ? {} : { relayTickets: new RelayTickets(identity.signing) }),
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
        endpoints: advertised(),
        name:
          hostname()
            .replace(/[^\x20-\x7e]/g, "?")
            .slice(0, 64) || "coordinator",
        ...removedMarks(db, Date.now()),
      }),
      log: (line) => log(line),
    });
    const advertised = (): string[] => advertisedEndpoints(settings, registrar.state.observedAddress);

    const joinPoller = new JoinPoller(
      new Enrollment({
        db,
        discovery,
        identity,
        addPeer: welcomer(wireguard, log, (endpoint) => (isRelaySocket(endpoint) ? `the relay at ${relay?.host}` : endpoint)),
        endpoints: advertised,
        grpcPort: agentService.port,
        heartbeatIntervalMs: settings.heartbeatIntervalMs,
        log,
        observe,
      }),
      db,
      log,
    );

    let analysis: Analysis | undefined;
    const peers = async () => {
      const status = await wireguard.status();
      return new Map(
        status.peers.map((p) => [
          p.publicKey,
          {
            endpoint: p.endpoint,
            latestHandshake: p.latestHandshake,
            relay: isRelaySocket(p.endpoint) ? relay?.host : undefined,
          },
        ]),
      );
    };
    const agentList = agentLister({ db, heartbeatIntervalMs: settings.heartbeatIntervalMs, peers, loopback, now: Date.now });
    const askTools = createAskTools({ db, agents: agentList });
    // `coral ask` reads the same tools as MCP clients, and starts from the same opening context.
    const ask = createAskService({
      settings: settings.ask,
      tools: askTools,
      buildContext: (question) => buildAskContext({ db, agentList }, question),
      findings: (ids) => findingsByIds(db, ids),
    });
    const app = createApiApp({
      db,
      identity,
      discoveryUrl: settings.discoveryUrl,
      mesh: { address: COORDINATOR_ADDRESS, listenPort: settings.listenPort },
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      discoveryState: () => registrar.state,
      ...(relay ? { relayState: () => relay.view() } : {}),
      loopback,
      peers,
      removePeer: (key) => wireguard.removePeer(key),
      onAgentRemoved: (agent) => {
        log(`removed agent ${agent.name} (${agent.meshIp}): its peer is gone, its address free, and it is refused until it joins again`);
        // Its record at discovery says so now, not at the next refresh: that is where the agent learns it.
        void registrar.registerOnce();
        analysis?.agentRemoved(agent.name);
      },
      onTokenCreated: () => joinPoller.hurry(),
      observe,
      bus,
      askTools,
      ask,
      ...(settings.apiToken ? { token: settings.apiToken } : {}),
    });
    const api = await serveApi({
      fetch: app.fetch,
      host: settings.apiHost,
      port: settings.apiPort,
      token: settings.apiToken,
      dataDir: options.dataDir,
      meshId: identity.meshId,
    });
    cleanups.push(() => api.close());
    log(`API on ${api.url}${settings.apiToken ? " (token required)" : " (loopback only)"}`);

    log(`registering with discovery at ${settings.discoveryUrl}...`);
    await registrar.registerOnce();
    registrar.start();
    cleanups.push(() => registrar.stop());
    joinPoller.start();
    cleanups.push(() => joinPoller.stop());

    // The findings engine, on its own thread, following what ingest stores.
    if (settings.analysisEnabled) {
      analysis = new Analysis({ db, bus, storePath: join(options.dataDir, STORE_FILE), config: settings.analysis, log });
      await analysis.start();
      const started = analysis;
      cleanups.push(() => started.stop());
    }

    const rollups = new Rollups(db);
    const watcher = new MeshWatcher({
      db,
      observe,
      bus,
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      discoveryState: () => registrar.state,
    });
    const jobs = [
      every("retention", RETENTION_EVERY_MS, () => applyRetention(db, settings.retention, Date.now()), { log }),
      every("rollups", ROLLUP_EVERY_MS, () => rollups.pass(Date.now()), { log }),
      every("edge counts", EDGE_WRITE_EVERY_MS, () => ingest.flush(), { log }),
      every("health watch", Math.max(1_000, settings.heartbeatIntervalMs / 2), () => watcher.pass(Date.now()), { log }),
    ];
    cleanups.push(() => Promise.all(jobs.map((job) => job.stop())).then(() => {}));
    const notifier = new Notifier({ config: settings.notifications, bus, log });
    notifier.start();
    cleanups.push(() => notifier.stop());
    if (notifier.hosts.length > 0) log(`notifications: findings go to ${notifier.hosts.join(", ")}`);
    // What was left from before this start (every() runs a job first one interval from now).
    void applyRetention(db, settings.retention, Date.now()).catch((error: unknown) => log(`retention failed: ${String(error)}`));
    watcher.pass(Date.now());

    return { meshId: identity.meshId, apiUrl: api.url, wireguard, db, bus, stop: cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
