/**
 * Agents as the API shows them (`coral status`, `coral agents`) and as `coral ask` and MCP
 * read them: health from the last heartbeat, path from the hub's WireGuard peer table.
 */
import { type PathKind, pathKind } from "@coral-mesh/wireguard/path";
import { type AgentHealth, agentHealth, type PluginHealth } from "../mesh/health.js";
import type { Store } from "../store/db.js";
import { agents } from "../store/schema.js";

/** One agent as the API shows it (`coral status`, `coral agents`). */
export interface AgentView {
  name: string;
  meshIp: string;
  status: AgentHealth;
  lastSeen: number | null;
  /** How the hub reaches it: see pathKind in @coral-mesh/wireguard/path. */
  path: PathKind;
  /** Where the hub sees it: the address its packets come from, or, relayed, `relay <host>`. */
  endpoint: string | null;
  /** The relay carrying its tunnel (the discovery Worker's host), when its path is `relay`. */
  relay: string | null;
  version: string | null;
  hostname: string | null;
  plugins: Array<{ name: string; state: string; lastError: string | null }>;
}

/** An agent's row of the hub's WireGuard peer table, and the relay carrying it, if one does. */
export interface PeerView {
  endpoint: string | null;
  latestHandshake: number | null;
  relay?: string | undefined;
}

export interface AgentViewOptions {
  db: Store;
  heartbeatIntervalMs: number;
  /** Path and endpoint of each agent, from the hub's WireGuard peer table. */
  peers: () => Promise<Map<string, PeerView>>;
  /** The coordinator runs without WireGuard: agents reach it over loopback. */
  loopback?: boolean | undefined;
  now: () => number;
}

/** Every agent, by name, as it stands now. */
export function agentLister(options: AgentViewOptions): () => Promise<AgentView[]> {
  return async () => {
    const peers = await options.peers();
    const at = options.now();
    return options.db
      .select()
      .from(agents)
      .orderBy(agents.name)
      .all()
      .map((agent): AgentView => {
        const plugins = JSON.parse(agent.plugins) as Array<PluginHealth & { lastError?: string | null }>;
        const peer = peers.get(agent.wireguardKey);
        return {
          name: agent.name,
          meshIp: agent.meshIp,
          status: agentHealth(agent.lastHeartbeatAt, plugins, options.heartbeatIntervalMs, at),
          lastSeen: agent.lastHeartbeatAt,
          path: pathKind({
            loopback: options.loopback ?? false,
            latestHandshake: peer?.latestHandshake,
            relayed: Boolean(peer?.relay),
            lastHeartbeatAt: agent.lastHeartbeatAt,
            enrolledAt: agent.enrolledAt,
            now: at,
          }),
          endpoint: peer?.relay ? `relay ${peer.relay}` : (peer?.endpoint ?? null),
          relay: peer?.relay ?? null,
          version: agent.version,
          hostname: agent.hostname,
          plugins: plugins.map((p) => ({ name: p.name, state: p.state, lastError: p.lastError ?? null })),
        };
      });
  };
}
