/**
 * The relay (docs/discovery.md, "Relay"): when no direct path comes up between an agent and its
 * hub, both reach the mesh's relay room in their own discovery Worker over a WebSocket, and the
 * room forwards WireGuard's datagrams between them. WireGuard stays end to end: the room sees
 * ciphertext only, and holds no key.
 *
 * The hub connects with a signed request (the mesh's identity key, as for its record). An agent
 * connects with a relay ticket: the coordinator's signature, with the same key, that the agent
 * whose WireGuard key is `peer` may use the mesh's relay until `expiresAt`. The agent gets its
 * ticket when it registers over the mesh, so a removed agent's ticket is never renewed.
 *
 * Frames are binary WebSocket messages. Between an agent and the room: one WireGuard datagram.
 * Between the room and the hub: the agent's 32-byte WireGuard public key, then the datagram.
 */
import * as z from "zod";
import { fromBase64Url, toBase64, toBase64Url, utf8 } from "../encoding.js";
import { weakSigningKeyReason } from "./ed25519.js";
import { wireguardKeySchema } from "./schemas.js";
import { meshIdFor, type SigningKeyPair, signRequest, verifyCanonical } from "./signing.js";
import { ticketSignatureSchema, ticketSigningKeySchema } from "./ticket.js";

export const RELAY_TICKET_SCHEME = "coral-relay-v1";

/** Limits of the relay room, per mesh. Documented in docs/discovery.md; change both together. */
export const relayLimits = {
  /** Largest datagram relayed: WireGuard's packets at the default MTU are at most 1,452 bytes. */
  maxDatagramBytes: 2_048,
  /** Agents connected to one mesh's room at once. */
  maxAgentsPerMesh: 256,
  /** Bytes forwarded per mesh per minute, both ways; beyond it datagrams are dropped until the minute ends. */
  maxBytesPerMinute: 32 * 1024 * 1024,
  /**
   * Messages taken per mesh per minute, both ways, whatever their size: what Cloudflare bills.
   * Past it the sending agent is disconnected (close code 4002) and datagrams are dropped.
   */
  maxMessagesPerMinute: 30_000,
  /** A relay ticket's longest life; the coordinator issues them for six days and renews them daily. */
  maxTicketMs: 7 * 86_400_000,
} as const;

/** Request headers of a relay connection. */
export const relayHeaders = {
  /** `hub` (signed with the mesh key) or `agent` (with a ticket). */
  role: "coral-relay-role",
  /** The agent's relay ticket, `relayTicketSchema` as JSON in base64url. */
  ticket: "coral-relay-ticket",
} as const;

/** The mesh's relay room in its discovery Worker (`ws` or `wss` once dialled). */
export function relayUrl(discoveryUrl: string, meshId: string): string {
  return `${discoveryUrl.replace(/\/+$/, "")}/v1/meshes/${meshId}/relay`;
}

/** The headers a hub dials its relay room with: its role, and a request signed by the mesh key (good once). */
export async function hubRelayHeaders(keys: SigningKeyPair, url: string): Promise<Record<string, string>> {
  return { [relayHeaders.role]: "hub", ...(await signRequest(keys, { method: "GET", path: new URL(url).pathname, body: "" })) };
}

/** The headers an agent dials its mesh's relay room with: its role and its ticket (as its header carries it). */
export function agentRelayHeaders(ticket: string): Record<string, string> {
  return { [relayHeaders.role]: "agent", [relayHeaders.ticket]: ticket };
}

export const relayTicketSchema = z.strictObject({
  signingKey: ticketSigningKeySchema,
  /** The agent's WireGuard public key. */
  peer: wireguardKeySchema,
  expiresAt: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  /** Ed25519 signature of `relayTicketMessage(meshId, peer, expiresAt)`, base64url. */
  signature: ticketSignatureSchema,
});
export type RelayTicket = z.infer<typeof relayTicketSchema>;

/** The exact text a relay ticket's signature covers: four lines joined by `\n`, no trailing line feed. */
export function relayTicketMessage(meshId: string, peer: string, expiresAt: number): string {
  return [RELAY_TICKET_SCHEME, meshId, peer, String(expiresAt)].join("\n");
}

/** Signs a relay ticket for the agent whose WireGuard key is `peer`, with the mesh's identity key. */
export async function signRelayTicket(keys: SigningKeyPair, peer: string, expiresAt: number): Promise<RelayTicket> {
  const message = relayTicketMessage(await meshIdFor(keys.publicKey), peer, expiresAt);
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, keys.privateKey, utf8.encode(message)));
  return { signingKey: toBase64Url(keys.publicKey), peer, expiresAt, signature: toBase64Url(signature) };
}

/** The ticket as it travels in its header. */
export function encodeRelayTicket(ticket: RelayTicket): string {
  return toBase64Url(utf8.encode(JSON.stringify(ticket)));
}

/** Reads a ticket header without checking its signature (an agent reading its own ticket's expiry). */
export function decodeRelayTicket(header: string): RelayTicket | undefined {
  const bytes = fromBase64Url(header);
  try {
    const parsed = relayTicketSchema.safeParse(bytes ? JSON.parse(new TextDecoder().decode(bytes)) : undefined);
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export type RelayTicketCheck = { ok: true; ticket: RelayTicket } | { ok: false; reason: string; expired?: boolean };

/** Reads a ticket header and checks it was signed for `meshId` by the key the mesh id commits to, and is in date. */
export async function verifyRelayTicket(header: string, meshId: string, now: number): Promise<RelayTicketCheck> {
  const ticket = decodeRelayTicket(header);
  if (!ticket) return { ok: false, reason: "it is not a relay ticket (base64url of its JSON)" };
  const key = fromBase64Url(ticket.signingKey) as Uint8Array;
  const weak = weakSigningKeyReason(key);
  if (weak) return { ok: false, reason: `its key is refused: ${weak}` };
  if ((await meshIdFor(key)) !== meshId) return { ok: false, reason: "its key is not the one this mesh id was derived from" };
  const signature = fromBase64Url(ticket.signature) as Uint8Array;
  if (!(await verifyCanonical(key, relayTicketMessage(meshId, ticket.peer, ticket.expiresAt), signature)))
    return { ok: false, reason: "its signature does not verify over this mesh id, peer and expiry" };
  if (ticket.expiresAt <= now) return { ok: false, reason: "it has expired", expired: true };
  if (ticket.expiresAt > now + relayLimits.maxTicketMs) return { ok: false, reason: "it lasts longer than a relay ticket may" };
  return { ok: true, ticket };
}

/** A datagram as the room sends it to the hub, or the hub to the room: the agent's key first. */
export function hubFrame(peer: Uint8Array, datagram: Uint8Array): Uint8Array {
  const frame = new Uint8Array(32 + datagram.length);
  frame.set(peer, 0);
  frame.set(datagram, 32);
  return frame;
}

/** Splits a hub frame; undefined when it is too short to hold a key. */
export function splitHubFrame(frame: Uint8Array): { peer: Uint8Array; datagram: Uint8Array } | undefined {
  if (frame.length <= 32) return undefined;
  return { peer: frame.subarray(0, 32), datagram: frame.subarray(32) };
}

/** The key in a hub frame as `wg` prints it. */
export function peerKeyText(peer: Uint8Array): string {
  return toBase64(peer);
}
