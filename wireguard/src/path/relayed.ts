/**
 * The agent's way through the relay, and its way back from it.
 *
 * - `throughRelay`: the hub peer pointed at the relay's local socket (see AgentRelay), and a
 *   handshake awaited. The strategy after `direct`, for a pair of NATs that cannot be punched
 *   through.
 * - `probeDirect`: while relayed, whether a direct path has come about since (the coordinator
 *   was given a public address or a forwarded port, this host moved networks). It keeps the
 *   tunnel's session and only points the peer at a direct candidate for a moment: a packet that
 *   gets through makes the hub's WireGuard roam to where it came from and answer there, as it
 *   does for any peer that moves; one that does not is lost, and the peer goes back to the relay.
 */
import { connect as tcpConnect } from "node:net";
import type { HubPeer, PathContext } from "./connect.js";
import { handshakeEpoch, type Nudger, nudge, udpNudger, waitForHandshake } from "./handshake.js";
import { KEEPALIVE_SECONDS } from "./mesh.js";
import { peerOf, type Tunnel } from "./tunnel.js";

/** What the strategy needs of the relay's end (AgentRelay is one). */
export interface RelayLink {
  /** The local socket the hub peer points at. */
  readonly endpoint: string;
  ready(signal?: AbortSignal): Promise<void>;
}

/** How long the relay's WebSocket may take to open, and then the handshake through it. */
export const RELAY_OPEN_MS = 5_000;
export const RELAY_HANDSHAKE_MS = 5_000;
/** How long one direct candidate gets to answer while the tunnel is relayed. */
export const PROBE_MS = 1_000;

/**
 * A fresh hub peer at the relay's socket, and a handshake through it: true once it shook hands.
 * `through` names the relay in the log (its host).
 */
export async function throughRelay(link: RelayLink, through: string, hub: HubPeer, context: PathContext): Promise<boolean> {
  const { tunnel, log, signal } = context;
  const started = Date.now();
  if (signal?.aborted) return false;
  const opening = new AbortController();
  const late = setTimeout(() => opening.abort(new Error("late")), RELAY_OPEN_MS);
  const stop = () => opening.abort(signal?.reason);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    await link.ready(opening.signal);
  } catch {
    if (!signal?.aborted) log(`the relay at ${through} did not open in ${RELAY_OPEN_MS / 1000} s`);
    return false;
  } finally {
    clearTimeout(late);
    signal?.removeEventListener("abort", stop);
  }
  const since = handshakeEpoch(Date.now());
  // A fresh entry: no session or pending handshake toward the direct candidates, and one sent at once.
  await tunnel.removePeer(hub.publicKey);
  await tunnel.setPeer({
    publicKey: hub.publicKey,
    endpoint: link.endpoint,
    allowedIps: hub.allowedIps,
    persistentKeepalive: KEEPALIVE_SECONDS,
  });
  const nudger = (context.nudger ?? udpNudger)();
  try {
    const peer = await waitForHandshake({
      tunnel,
      publicKey: hub.publicKey,
      since,
      until: Date.now() + RELAY_HANDSHAKE_MS,
      meshIp: hub.meshIp,
      nudger,
      giveUp: () => signal?.aborted ?? false,
    });
    if (!peer) {
      if (!signal?.aborted) log(`no handshake with the coordinator through the relay at ${through} in ${RELAY_HANDSHAKE_MS / 1000} s`);
      return false;
    }
    log(`tunnel up through the relay at ${through} in ${Date.now() - started} ms`);
    return true;
  } finally {
    nudger.close();
  }
}

/** Whether the hub answers through the tunnel now (a TCP connection to one of its ports, say). */
export type Probe = (meshIp: string) => Promise<boolean>;

/** A probe that opens a TCP connection to `port` at the hub's mesh address, within PROBE_MS. */
export function tcpProbe(port: number, timeoutMs = PROBE_MS): Probe {
  return (meshIp) =>
    new Promise((resolve) => {
      const socket = tcpConnect({ host: meshIp, port });
      const done = (answered: boolean) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(answered);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      socket.once("connect", () => done(true));
      socket.once("error", () => done(false));
    });
}

/**
 * Points the hub peer at each direct candidate in turn, keeping its session, and asks `probe`
 * whether the hub answers: the candidate the answer came through, or undefined, with the peer
 * back at `relayEndpoint`. An answer counts only if the peer is not at the relay afterwards:
 * WireGuard follows the source of what it receives, so a packet the hub sent meanwhile through
 * the relay takes the peer back there, and the answer with it.
 */
export async function probeDirect(
  tunnel: Pick<Tunnel, "status" | "setPeer">,
  hub: HubPeer,
  relayEndpoint: string,
  probe: Probe,
  nudger: () => Nudger = udpNudger,
): Promise<string | undefined> {
  const entry = { publicKey: hub.publicKey, allowedIps: hub.allowedIps, persistentKeepalive: KEEPALIVE_SECONDS };
  for (const endpoint of hub.endpoints) {
    await tunnel.setPeer({ ...entry, endpoint });
    const answered = await probe(hub.meshIp);
    const at = (await peerOf(tunnel, hub.publicKey))?.endpoint;
    if (answered && at && at !== relayEndpoint) return at;
  }
  await tunnel.setPeer({ ...entry, endpoint: relayEndpoint });
  // A candidate the hub heard from but could not answer through made it roam there: a packet
  // through the relay brings it back now, not at the next keepalive.
  await nudge([hub.meshIp], nudger);
  return undefined;
}
