/**
 * coral.mesh.v1.AgentService, served on the coordinator's mesh address. Every agent owns
 * one /32 of the mesh, so WireGuard's cryptokey routing already proves which agent a
 * packet came from: a caller is the agent whose address it calls from, and a call that
 * claims (in `coral-agent` metadata) to be another agent is refused.
 */

import { isIP } from "node:net";
import { meshV1, shutdownGracefully } from "@coral-mesh/sdk-proto/grpc";
import {
  status as GrpcStatus,
  type handleBidiStreamingCall,
  type handleUnaryCall,
  Metadata,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
} from "@grpc/grpc-js";
import type { RelayTickets } from "../mesh/relay-tickets.js";
import { removalOf, removedMessage } from "../mesh/removals.js";
import { type Caller, prepareAgentQueries } from "../store/agent-queries.js";
import type { Bus } from "../store/bus.js";
import type { Store } from "../store/db.js";
import type { Observe } from "../store/observations.js";
import { ClockOffsets } from "./clock.js";
import { type Ingest, prepareIngest } from "./ingest.js";

export interface AgentServiceOptions {
  db: Store;
  heartbeatIntervalMs: number;
  now?: () => number;
  /**
   * Without WireGuard (`--wireguard off`, a trial on one machine) every call comes from
   * 127.0.0.1, and the caller is who its `coral-agent` metadata says. Only on loopback.
   */
  trustClaimedName?: boolean;
  /** Where what was stored is announced. */
  bus?: Bus;
  /** Records the coordinator's own observations (plugins failing and recovering). */
  observe?: Observe;
  /** Where reports go; its owner flushes what it holds back. Made here when absent. */
  ingest?: Ingest;
  /** Issues relay tickets in register and heartbeat answers; none without (no discovery, no relay). */
  relayTickets?: RelayTickets;
}

/** Answers once the ticket is signed (a tenth of a millisecond); without one, or if signing failed, with none. */
function withRelayTicket(ticket: Promise<string> | undefined, answer: (relayTicket: string) => void): void {
  if (!ticket) answer("");
  else ticket.then(answer, () => answer(""));
}

/** A call or a stream refused, with what to do about it (and its Coral code, in `coral-error-code`). */
interface Refusal {
  code: GrpcStatus;
  details: string;
  metadata?: Metadata;
}

/** The trailer that carries a refusal's stable code (see the registry in sdk-proto). */
export const ERROR_CODE_METADATA = "coral-error-code";

const PLUGIN_STATES: Record<number, string> = { 1: "starting", 2: "running", 3: "degraded", 4: "failed", 5: "stopped" };

/** The IP in a grpc-js peer string: "ipv4:100.64.0.2:5000", "ipv6:[::1]:5000", "100.64.0.2:5000". */
export function peerAddress(peer: string): string {
  const withoutScheme = peer.replace(/^ipv[46]:/, "");
  const bracketed = /^\[([^\]]+)\]:\d+$/.exec(withoutScheme);
  if (bracketed) return bracketed[1] ?? "";
  return withoutScheme.replace(/:\d+$/, "");
}

function identify(
  agentByIp: (ip: string, claimed: string | undefined) => Caller | undefined,
  call: { getPeer(): string; metadata: Metadata },
  callback: (error: Refusal) => void,
  removed: (name: string) => Refusal | undefined,
): Caller | undefined {
  const address = peerAddress(call.getPeer()).replace(/^::ffff:/, "");
  const claimedName = call.metadata.get("coral-agent")[0];
  const agent = agentByIp(address, claimedName === undefined ? undefined : String(claimedName));
  if (!agent) {
    const refusal = claimedName === undefined ? undefined : removed(String(claimedName));
    callback(
      refusal ?? { code: GrpcStatus.UNAUTHENTICATED, details: `no agent of this mesh has the address ${address}; join the mesh first` },
    );
    return undefined;
  }
  const claimed = call.metadata.get("coral-agent")[0];
  if (claimed !== undefined && String(claimed) !== agent.name) {
    callback({
      code: GrpcStatus.PERMISSION_DENIED,
      details: `calls from ${address} come from agent ${agent.name}, not ${String(claimed)}`,
    });
    return undefined;
  }
  return agent;
}

/** A host's addresses as its register lists them: IPs only, at most 32. */
function hostAddresses(addresses: readonly string[]): string[] {
  return [...new Set(addresses.filter((a) => a.length <= 64 && isIP(a) !== 0))].slice(0, 32);
}

interface StoredPlugin {
  name: string;
  state: string;
  lastError: string | null;
}

/** The plugin changes worth an event: failing, degrading, and recovering from either. */
export function pluginChanges(
  before: readonly StoredPlugin[],
  after: readonly StoredPlugin[],
): Array<{ kind: string; plugin: StoredPlugin; from: string }> {
  const was = new Map(before.map((p) => [p.name, p.state]));
  const changes: Array<{ kind: string; plugin: StoredPlugin; from: string }> = [];
  for (const plugin of after) {
    const from = was.get(plugin.name) ?? "none";
    if (from === plugin.state) continue;
    if (plugin.state === "failed" || plugin.state === "degraded") changes.push({ kind: `plugin.${plugin.state}`, plugin, from });
    else if (plugin.state === "running" && (from === "failed" || from === "degraded"))
      changes.push({ kind: "plugin.recovered", plugin, from });
  }
  return changes;
}

function pluginsJson(plugins: readonly meshV1.PluginState[]): string {
  return JSON.stringify(
    plugins.map((p) => ({
      name: p.name,
      version: p.version,
      state: PLUGIN_STATES[p.status] ?? "unknown",
      lastError: p.lastError || null,
      since: p.sinceUnixMs || null,
    })),
  );
}

/**
 * The service's handlers. `streams` collects the open ReportStreams, so that whoever stops the
 * server can end them first: each would otherwise hold a graceful shutdown for its whole grace.
 */
export function agentService(
  options: AgentServiceOptions,
  streams = new Set<ServerDuplexStream<meshV1.ReportStreamRequest, meshV1.ReportStreamResponse>>(),
): meshV1.AgentServiceServer {
  const now = () => options.now?.() ?? Date.now();
  const q = prepareAgentQueries(options.db);
  const agentByIp = options.trustClaimedName
    ? (_ip: string, claimed: string | undefined) => (claimed === undefined ? undefined : q.byName(claimed))
    : (ip: string) => q.byIp(ip);
  const ingest = options.ingest ?? prepareIngest(options.db, options.bus);
  const clocks = new ClockOffsets(q.setClockOffset);
  /** Events for plugins that failed, degraded or recovered since the states stored before. */
  const notePlugins = (agent: string, beforeJson: string, afterJson: string, at: number) => {
    if (!options.observe || beforeJson === afterJson) return;
    for (const change of pluginChanges(JSON.parse(beforeJson) as StoredPlugin[], JSON.parse(afterJson) as StoredPlugin[])) {
      options.observe({
        kind: change.kind,
        agent,
        subject: { kind: "agent", id: agent, name: agent },
        attributes: {
          plugin: change.plugin.name,
          from: change.from,
          to: change.plugin.state,
          ...(change.plugin.lastError ? { error: change.plugin.lastError } : {}),
        },
        time: at,
      });
    }
  };
  /** A caller that is no agent but names one that was removed: told so, with a code it can act on. */
  const removed = (name: string): Refusal | undefined => {
    const removal = removalOf(options.db, name, now());
    if (!removal) return undefined;
    const metadata = new Metadata();
    metadata.set(ERROR_CODE_METADATA, "agent_removed");
    return { code: GrpcStatus.PERMISSION_DENIED, details: removedMessage(name, removal.at), metadata };
  };
  /** Each agent's run (RegisterRequest.run_id) as of its latest register. */
  const runs = new Map<string, string>();

  return {
    register: ((call, callback) => {
      const agent = identify(agentByIp, call, callback, removed);
      if (!agent) return;
      const r = call.request;
      const at = now();
      if (r.runId) runs.set(agent.name, r.runId);
      else runs.delete(agent.name);
      clocks.reset(agent.name);
      clocks.record(agent.name, Number(r.sentAtUnixMs), at);
      const plugins = pluginsJson(r.plugins);
      notePlugins(agent.name, agent.plugins, plugins, at);
      if (r.addresses.length > 0) q.setAddresses(agent.name, hostAddresses(r.addresses));
      q.registered(agent.name, at, {
        hostname: r.hostname || agent.hostname,
        os: r.os || agent.os,
        arch: r.arch || agent.arch,
        version: r.agentVersion || agent.version,
        plugins,
      });
      const answer = {
        serverTimeUnixMs: at,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        lastAckedSequence: q.lastSequence(agent.name),
      };
      withRelayTicket(options.relayTickets?.issue(agent.wireguardKey, at), (relayTicket) => callback(null, { ...answer, relayTicket }));
    }) satisfies handleUnaryCall<meshV1.RegisterRequest, meshV1.RegisterResponse>,

    heartbeat: ((call, callback) => {
      const agent = identify(agentByIp, call, callback, removed);
      if (!agent) return;
      const run = runs.get(agent.name);
      if (run && call.request.runId && call.request.runId !== run) {
        // An earlier run's, arriving late: its plugin states would overwrite the current run's.
        callback({
          code: GrpcStatus.FAILED_PRECONDITION,
          details: `a newer run of agent ${agent.name} has registered since this one; if two processes run as ${agent.name}, stop one`,
        });
        return;
      }
      const at = now();
      clocks.record(agent.name, Number(call.request.sentAtUnixMs), at);
      const plugins = pluginsJson(call.request.plugins);
      // Plugin states rarely change between heartbeats; leave the column alone when they did not.
      if (plugins === agent.plugins) q.beat(agent.name, at);
      else {
        q.beat(agent.name, at, plugins);
        notePlugins(agent.name, agent.plugins, plugins, at);
      }
      withRelayTicket(options.relayTickets?.renew(agent.wireguardKey, at), (relayTicket) =>
        callback(null, { serverTimeUnixMs: at, relayTicket }),
      );
    }) satisfies handleUnaryCall<meshV1.HeartbeatRequest, meshV1.HeartbeatResponse>,

    report: ((call, callback) => {
      const agent = identify(agentByIp, call, callback, removed);
      if (!agent) return;
      const answer = report(agent, call.request);
      if ("code" in answer) callback(answer);
      else callback(null, answer);
    }) satisfies handleUnaryCall<meshV1.ReportRequest, meshV1.ReportResponse>,

    reportStream: ((call) => {
      const fail = (error: Refusal) => call.emit("error", error);
      const agent = identify(agentByIp, call, fail, removed);
      if (!agent) return;
      streams.add(call);
      call.on("data", (request: meshV1.ReportStreamRequest) => {
        const answer = report(agent, request);
        if ("code" in answer) fail(answer);
        else call.write(answer);
      });
      call.on("end", () => call.end());
      for (const ended of ["close", "cancelled", "error"]) call.on(ended, () => streams.delete(call));
    }) satisfies handleBidiStreamingCall<meshV1.ReportStreamRequest, meshV1.ReportStreamResponse>,
  };

  /** Report and ReportStream alike: stores the batches, once each, and counts as a heartbeat. */
  function report(agent: Caller, request: meshV1.ReportRequest): meshV1.ReportResponse | Refusal {
    if (request.batches.length > 500)
      return { code: GrpcStatus.INVALID_ARGUMENT, details: "at most 500 batches per Report; send the rest in another call" };
    const at = now();
    clocks.record(agent.name, Number(request.sentAtUnixMs), at);
    const acked = ingest(agent.name, request.batches, at);
    // A report is as good a sign of life as a heartbeat: an agent that reports skips them.
    q.beat(agent.name, at);
    return { ackedSequences: acked };
  }
}

/** Serves the agent service on `host:port` (the mesh address in production). */
export async function startAgentService(
  options: AgentServiceOptions & { host: string; port: number },
): Promise<{ port: number; close(): Promise<void> }> {
  const server = new Server();
  const streams = new Set<ServerDuplexStream<meshV1.ReportStreamRequest, meshV1.ReportStreamResponse>>();
  server.addService(meshV1.AgentServiceService, agentService(options, streams));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    port,
    close: () => {
      // Agents open a new stream when theirs ends: end them, so that the calls in flight are all that shutdown waits for.
      for (const stream of streams) stream.end();
      return shutdownGracefully(server);
    },
  };
}
