/**
 * The hub's side of a path: it sends toward an agent too, so that a filtering NAT in front
 * of the hub lets the agent's handshake in, and so that a hub behind a NAT that maps per
 * destination can shake hands at all (with an agent that accepts what comes in).
 */
import { handshakeEpoch, type Nudger, nudge, shookHandsSince, udpNudger } from "./handshake.js";
import { KEEPALIVE_SECONDS } from "./mesh.js";
import { peerOf, type Tunnel } from "./tunnel.js";

/** An agent as a peer of the hub's interface, at the address it was last seen from. */
export interface AgentPeer {
  publicKey: string;
  /** The agent's /32. */
  allowedIps: string[];
  endpoint: string;
}

const PUNCH_DELAY_MS = 300;
const PUNCH_RETRY_MS = 250;
const PUNCH_RETRY_MAX_MS = 2_000;
const PUNCH_FOR_MS = 30_000;

/**
 * For a newly joined agent: starts PUNCH_DELAY_MS after the answer, about when the agent
 * (polling for the answer every 250 ms) has its interface up and sends too: a packet from the
 * hub that reaches the agent's NAT first is dropped there, and on a Linux router without an
 * input firewall it would even take the public port the agent's own mapping needs. Then,
 * until a handshake and for up to 30 s, a fresh peer entry every PUNCH_RETRY_MS, doubling:
 * WireGuard sends a new handshake at most every 5 s for one peer entry, however many packets
 * wait. A peer that has heard from the agent is left alone to finish its handshake.
 * Keepalives stay on, which also holds the hub's own NAT open toward the agent.
 *
 * Resolves with what came of it, in words.
 */
export async function punch(
  tunnel: Pick<Tunnel, "status" | "setPeer" | "removePeer">,
  agent: AgentPeer,
  /** How an endpoint is said in the outcome (a relay's local socket, by the relay's name). */
  say: (endpoint: string) => string = (endpoint) => endpoint,
): Promise<string> {
  const started = Date.now();
  const since = handshakeEpoch(started);
  const keepalive = { publicKey: agent.publicKey, allowedIps: agent.allowedIps, persistentKeepalive: KEEPALIVE_SECONDS };
  let wait = PUNCH_RETRY_MS;
  let sent = 0;
  await new Promise((r) => setTimeout(r, PUNCH_DELAY_MS));
  for (const deadline = Date.now() + PUNCH_FOR_MS; Date.now() < deadline; wait = Math.min(2 * wait, PUNCH_RETRY_MAX_MS)) {
    const peer = await peerOf(tunnel, agent.publicKey);
    if (!peer) return "the agent was removed meanwhile";
    if (shookHandsSince(peer, since)) {
      // Through (the agent's own handshake, perhaps): keepalives on, at the address it came from.
      if (peer.persistentKeepalive === null) await tunnel.setPeer(keepalive);
      return `handshake through ${say(peer.endpoint ?? agent.endpoint)} ${Date.now() - started} ms after its answer (${sent} sent from here)`;
    }
    if (peer.rxBytes === 0) {
      await tunnel.removePeer(agent.publicKey);
      // Turning keepalives on sends one at once, and with it a handshake.
      await tunnel.setPeer({ ...keepalive, endpoint: agent.endpoint });
      sent++;
    }
    await new Promise((r) => setTimeout(r, wait));
  }
  return `no handshake within ${PUNCH_FOR_MS / 1000} s (${sent} sent toward ${agent.endpoint}); WireGuard keeps trying`;
}

/**
 * For an agent that went quiet: a fresh peer entry at its last known endpoint, and a packet
 * to send, so that the hub shakes hands anew now. WireGuard itself never does for a peer it
 * only sends keepalives to: after an agent restarts, the hub's old session looks alive to the
 * hub for up to three minutes, and where the agent cannot reach the hub first (a hub behind a
 * symmetric NAT) the agent stays cut off that long.
 */
export async function revive(
  tunnel: Pick<Tunnel, "setPeer" | "removePeer">,
  agent: AgentPeer & { meshIp: string },
  nudger: () => Nudger = udpNudger,
): Promise<void> {
  await tunnel.removePeer(agent.publicKey);
  await tunnel.setPeer({
    publicKey: agent.publicKey,
    allowedIps: agent.allowedIps,
    endpoint: agent.endpoint,
    persistentKeepalive: KEEPALIVE_SECONDS,
  });
  await nudge([agent.meshIp], nudger);
}
