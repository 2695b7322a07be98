/**
 * Resolving a connection to the service at its far end. An agent reports `address:port`
 * it connected to; that is a service of the mesh when some agent has that address (its
 * mesh address, one of its host's addresses, or the endpoint the hub sees it at) and a
 * service there listens on the port, on that address or on all of them. A loopback
 * address, or one of the connecting agent's own, means the same host. Anything else is
 * `external`, but for the coordinator's mesh address: that is Coral's own traffic (agents
 * reporting), no part of the application's graph.
 */
import { isIPv4 } from "node:net";
import { COORDINATOR_ADDRESS } from "@coral-mesh/wireguard/path";

export interface AgentAddresses {
  name: string;
  meshIp: string;
  addresses: readonly string[];
  /** The hub's view of the agent, `ip:port`: its NAT's public address. */
  endpoint: string | null;
}

export interface Listener {
  agent: string;
  service: string;
  /** `address:port` as the collector reported it: `0.0.0.0:5432`, `:::80`, `127.0.0.1:6379`. */
  socket: string;
}

export type Resolution = { kind: "service"; name: string; agent: string } | { kind: "external"; name: string } | { kind: "coral" };

const WILDCARDS = new Set(["0.0.0.0", "::", "*", ""]);

/** `::ffff:192.0.2.1` → `192.0.2.1`; brackets and zone ids dropped; lowercase. */
export function normalizeAddress(address: string): string {
  let a = address.trim().toLowerCase();
  if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
  a = a.replace(/%.*$/, "");
  if (a.startsWith("::ffff:") && isIPv4(a.slice(7))) a = a.slice(7);
  return a;
}

export function isLoopback(address: string): boolean {
  return address === "::1" || /^127\./.test(address);
}

/** `0.0.0.0:5432` → ["0.0.0.0", 5432]; `:::80` and `[::]:80` → ["::", 80]. */
export function splitSocket(socket: string): [string, number] | undefined {
  const colon = socket.lastIndexOf(":");
  if (colon < 0) return undefined;
  const port = Number(socket.slice(colon + 1));
  if (!Number.isInteger(port)) return undefined;
  return [normalizeAddress(socket.slice(0, colon)), port];
}

export class Resolver {
  private readonly agentsByAddress = new Map<string, string[]>();
  private readonly ownAddresses = new Map<string, Set<string>>();
  /** agent → port → listeners on it. */
  private readonly listeners = new Map<string, Map<number, Array<{ address: string; service: string }>>>();

  constructor(agents: readonly AgentAddresses[], listeners: readonly Listener[]) {
    for (const agent of agents) {
      const endpointIp = agent.endpoint ? splitSocket(agent.endpoint)?.[0] : undefined;
      const own = new Set([agent.meshIp, ...agent.addresses, ...(endpointIp ? [endpointIp] : [])].map(normalizeAddress));
      this.ownAddresses.set(agent.name, own);
      for (const address of own) {
        const list = this.agentsByAddress.get(address) ?? [];
        list.push(agent.name);
        this.agentsByAddress.set(address, list);
      }
    }
    for (const l of listeners) {
      const socket = splitSocket(l.socket);
      if (!socket) continue;
      const [address, port] = socket;
      const ports = this.listeners.get(l.agent) ?? new Map();
      const list = ports.get(port) ?? [];
      list.push({ address, service: l.service });
      ports.set(port, list);
      this.listeners.set(l.agent, ports);
    }
  }

  resolve(fromAgent: string, remoteAddress: string, port: number): Resolution {
    const address = normalizeAddress(remoteAddress);
    if (address === COORDINATOR_ADDRESS) return { kind: "coral" };
    const sameHost = isLoopback(address) || this.ownAddresses.get(fromAgent)?.has(address);
    const candidates = sameHost ? [fromAgent] : (this.agentsByAddress.get(address) ?? []);
    for (const agent of candidates) {
      const listening = this.listeners.get(agent)?.get(port);
      if (!listening) continue;
      const match =
        listening.find((l) => l.address === address) ??
        listening.find((l) => WILDCARDS.has(l.address)) ??
        // A connection to 127.0.0.1 reaches a service bound to any loopback address of the host.
        (isLoopback(address) ? listening.find((l) => isLoopback(l.address)) : undefined);
      if (match) return { kind: "service", name: match.service, agent };
    }
    return { kind: "external", name: address.includes(":") ? `[${address}]:${port}` : `${address}:${port}` };
  }
}
