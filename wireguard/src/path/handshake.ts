/** Seeing a handshake come about, and giving WireGuard a reason to start one. */
import { createSocket } from "node:dgram";
import type { PeerStatus } from "../dump.js";
import { peerOf, type Tunnel } from "./tunnel.js";

/** Handshake times have a resolution of one second: a handshake "since now" is one at or after this. */
export function handshakeEpoch(now: number): number {
  return Math.floor(now / 1000) * 1000;
}

export function shookHandsSince(peer: Pick<PeerStatus, "latestHandshake"> | undefined, since: number): boolean {
  return (peer?.latestHandshake ?? 0) >= since;
}

/**
 * Sends a one-byte datagram through the tunnel (to the discard port): a packet waiting to go
 * is what makes WireGuard shake hands now, rather than when the peer's timers say so.
 */
export interface Nudger {
  send(meshIp: string): Promise<void>;
  close(): void;
}

const DISCARD_PORT = 9;

export function udpNudger(): Nudger {
  const socket = createSocket("udp4");
  return {
    // A failed send is no failure of the path: the handshake is what is watched.
    send: (meshIp) => new Promise<void>((done) => socket.send(Buffer.from([0]), DISCARD_PORT, meshIp, () => done())),
    close: () => socket.close(),
  };
}

/** One datagram to each address, through the tunnel. */
export async function nudge(meshIps: string[], nudger: () => Nudger = udpNudger): Promise<void> {
  if (meshIps.length === 0) return;
  const socket = nudger();
  try {
    await Promise.all(meshIps.map((ip) => socket.send(ip)));
  } finally {
    socket.close();
  }
}

/**
 * How often a wait looks for the handshake, which on a LAN comes within a few ms: each look
 * (a request on wireguard-go's socket) costs about a tenth of a millisecond, so the pause
 * grows with the time waited (a fifth of it, 2 to 100 ms). A handshake is seen soon after it
 * lands, and a side that cannot get through costs its host little while it keeps trying.
 */
const HANDSHAKE_POLL_MS = { min: 2, max: 100, ofWaited: 1 / 5 } as const;
export const handshakePollMs = (waitedMs: number): number =>
  Math.min(HANDSHAKE_POLL_MS.max, Math.max(HANDSHAKE_POLL_MS.min, Math.round(waitedMs * HANDSHAKE_POLL_MS.ofWaited)));
/** Without a packet to send, WireGuard would not shake hands at all: one goes this often. */
const NUDGE_EVERY_MS = 100;

export interface HandshakeWait {
  tunnel: Pick<Tunnel, "status">;
  publicKey: string;
  /** A handshake at or after this (see handshakeEpoch) counts. */
  since: number;
  /** Unix ms to wait until. */
  until: number;
  /** The peer's mesh address, toward which packets are sent meanwhile. */
  meshIp: string;
  nudger: Nudger;
  /** Asked after each look without a handshake; true ends the wait early. */
  giveUp?: (peer: PeerStatus | undefined) => boolean;
}

/** Waits for a handshake with one peer, sending toward it meanwhile: the peer once it shook hands, else undefined. */
export async function waitForHandshake(wait: HandshakeWait): Promise<PeerStatus | undefined> {
  const started = Date.now();
  let nudged = 0;
  while (Date.now() < wait.until) {
    if (Date.now() - nudged >= NUDGE_EVERY_MS) {
      void wait.nudger.send(wait.meshIp);
      nudged = Date.now();
    }
    await new Promise((r) => setTimeout(r, handshakePollMs(Date.now() - started)));
    const peer = await peerOf(wait.tunnel, wait.publicKey);
    if (shookHandsSince(peer, wait.since)) return peer;
    if (wait.giveUp?.(peer)) return undefined;
  }
  return undefined;
}
