/**
 * Join tickets (docs/discovery.md, "Join tickets"): the coordinator signs, with the mesh's
 * identity key, that token `tokenId` of mesh `meshId` may queue joins until `expiresAt`.
 * The signature travels in the invite; the agent sends it with its join request, and
 * discovery checks it against the key the mesh id commits to, learning no secret. So only
 * holders of an invite can queue a join, and discovery can count pending joins per token.
 */
import * as z from "zod";
import { fromBase64Url, toBase64Url, utf8 } from "../encoding.js";
import { weakSigningKeyReason } from "./ed25519.js";
import { meshIdFor, type SigningKeyPair, verifyCanonical } from "./signing.js";

export const TICKET_SCHEME = "coral-ticket-v1";

/** A token id as the coordinator makes them: base32 of 10 random bytes (16 characters), or up to 32. */
export const tokenIdSchema = z.string().regex(/^[a-z0-9]{8,32}$/, "a token id is 8 to 32 lowercase letters and digits");

export const ticketSignatureSchema = z
  .string()
  .length(86)
  .refine((text) => fromBase64Url(text)?.length === 64, "a ticket signature is 64 bytes in base64url (86 characters)");

/** The mesh's Ed25519 key as a ticket carries it (base64url); its fingerprint must be the mesh id. */
export const ticketSigningKeySchema = z
  .string()
  .length(43)
  .refine((text) => fromBase64Url(text)?.length === 32, "a signing key is 32 bytes in base64url (43 characters)");

/** The `ticket` of a join request. */
export const joinTicketSchema = z.strictObject({
  signingKey: ticketSigningKeySchema,
  tokenId: tokenIdSchema,
  /** Unix ms after which the ticket, like its token, no longer works. */
  expiresAt: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  /** Ed25519 signature of `ticketMessage(meshId, tokenId, expiresAt)`. */
  signature: ticketSignatureSchema,
});
export type JoinTicket = z.infer<typeof joinTicketSchema>;

/** The exact text a ticket signature covers: four lines joined by `\n`, no trailing line feed. */
export function ticketMessage(meshId: string, tokenId: string, expiresAt: number): string {
  return [TICKET_SCHEME, meshId, tokenId, String(expiresAt)].join("\n");
}

/** Signs a ticket for a token of the mesh `keys` own; returns the signature, base64url. */
export async function signTicket(keys: SigningKeyPair, ticket: { tokenId: string; expiresAt: number }): Promise<string> {
  const message = ticketMessage(await meshIdFor(keys.publicKey), ticket.tokenId, ticket.expiresAt);
  return toBase64Url(new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, keys.privateKey, utf8.encode(message))));
}

export type TicketCheck = { ok: true } | { ok: false; reason: string };

/** Checks that a ticket was signed for `meshId` by the key the mesh id commits to. Expiry is the caller's. */
export async function verifyTicket(ticket: JoinTicket, meshId: string): Promise<TicketCheck> {
  const key = fromBase64Url(ticket.signingKey);
  const signature = fromBase64Url(ticket.signature);
  if (!key || !signature) return { ok: false, reason: "it is not encoded as base64url" };
  const weak = weakSigningKeyReason(key);
  if (weak) return { ok: false, reason: `its key is refused: ${weak}` };
  if ((await meshIdFor(key)) !== meshId) return { ok: false, reason: "its key is not the one this mesh id was derived from" };
  if (!(await verifyCanonical(key, ticketMessage(meshId, ticket.tokenId, ticket.expiresAt), signature)))
    return { ok: false, reason: "its signature does not verify over this mesh id, token id and expiry" };
  return { ok: true };
}
