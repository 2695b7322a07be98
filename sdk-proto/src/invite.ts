/**
 * Invites: what `coral token create` prints and `coral-agent --join` takes.
 *
 *   coral2_<base64url( JSON payload || first 4 bytes of SHA-256(JSON payload) )>
 *
 * One token of URL-safe characters, so a double-click selects all of it. The
 * checksum catches a damaged copy-paste; the mesh id must be the fingerprint of
 * the pinned signing key, so an edited invite cannot pair one mesh with another's key.
 *
 * Version 2 added `ticket`, the coordinator's signature that lets the token queue joins at
 * discovery. Version 1 invites have none, and discovery refuses joins without one, so they
 * are refused here with the fix: a new token.
 */
import * as z from "zod";
import { meshIdSchema, signingKeySchema } from "./discovery/schemas.js";
import { meshIdFor, type SigningKeyPair } from "./discovery/signing.js";
import { type JoinTicket, signTicket, ticketSignatureSchema, tokenIdSchema, verifyTicket } from "./discovery/ticket.js";
import { fromBase64Url, sha256, toBase64Url, utf8 } from "./encoding.js";
import { CoralError } from "./errors/index.js";

export const INVITE_VERSION = 2;
const PREFIX = "coral";
const CHECKSUM_BYTES = 4;

export const inviteSchema = z.strictObject({
  /** Discovery's base URL. */
  discoveryUrl: z.url({ protocol: /^https?$/ }).max(512),
  meshId: meshIdSchema,
  /** The coordinator's Ed25519 key (base64url), pinned: records are verified against it. */
  signingKey: signingKeySchema,
  /** The token's id, for `coral token revoke` and the audit log. */
  tokenId: tokenIdSchema,
  /** The join secret (base64url, 32 bytes); the coordinator stores only its hash. */
  secret: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "a join secret is 32 bytes of base64url"),
  /** When the token stops working, Unix ms (informational: the coordinator enforces it). */
  expiresAt: z.number().int().positive(),
  /** The join ticket: the coordinator's Ed25519 signature over mesh id, token id and expiry (base64url). */
  ticket: ticketSignatureSchema,
});
export type Invite = z.infer<typeof inviteSchema>;

export async function encodeInvite(invite: Invite): Promise<string> {
  const payload = utf8.encode(JSON.stringify({ v: INVITE_VERSION, ...inviteSchema.parse(invite) }));
  const checksum = (await sha256(payload)).subarray(0, CHECKSUM_BYTES);
  const bytes = new Uint8Array(payload.length + CHECKSUM_BYTES);
  bytes.set(payload);
  bytes.set(checksum, payload.length);
  return `${PREFIX}${INVITE_VERSION}_${toBase64Url(bytes)}`;
}

/**
 * What a coordinator prints for a new token: the invite for its mesh (the mesh id and pinned key
 * from `keys`), with the join ticket signed by `keys` for this token and expiry.
 */
export async function issueInvite(
  keys: SigningKeyPair,
  token: { discoveryUrl: string; tokenId: string; secret: string; expiresAt: number },
): Promise<string> {
  return encodeInvite({
    ...token,
    meshId: await meshIdFor(keys.publicKey),
    signingKey: toBase64Url(keys.publicKey),
    ticket: await signTicket(keys, token),
  });
}

/** Reads an invite; every way it can be wrong has its own message. */
export async function decodeInvite(text: string): Promise<Invite> {
  const trimmed = text.trim();
  const match = /^coral(\d+)_([A-Za-z0-9_-]+)$/.exec(trimmed);
  if (!match) {
    throw new CoralError(
      "invite_malformed",
      trimmed.startsWith(PREFIX)
        ? "This invite contains characters an invite never has (spaces or line breaks in the middle?); copy it again as one line."
        : `This is not a Coral invite (they start with "${PREFIX}${INVITE_VERSION}_"); copy the whole output of \`coral token create\`.`,
    );
  }
  const version = Number(match[1]);
  if (version !== INVITE_VERSION) {
    throw new CoralError(
      "invite_version",
      version > INVITE_VERSION
        ? `This invite is version ${version}, newer than this Coral understands (version ${INVITE_VERSION}); upgrade coral-agent.`
        : version === 1
          ? "This invite is version 1, made before discovery required join tickets, and no longer lets an agent join; create a new one with `coral token create` on an up-to-date coordinator."
          : `This invite is version ${version}, which this Coral no longer accepts; create a new one with \`coral token create\`.`,
    );
  }
  const bytes = fromBase64Url(match[2] ?? "");
  if (!bytes || bytes.length <= CHECKSUM_BYTES) throw damaged("it is cut short");
  const payload = bytes.subarray(0, bytes.length - CHECKSUM_BYTES);
  const checksum = bytes.subarray(bytes.length - CHECKSUM_BYTES);
  const expected = (await sha256(payload)).subarray(0, CHECKSUM_BYTES);
  if (!checksum.every((byte, i) => byte === expected[i])) throw damaged("its checksum does not match");
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(payload));
  } catch {
    throw damaged("its contents are not readable");
  }
  const { v: _version, ...fields } = (json ?? {}) as Record<string, unknown>;
  const parsed = inviteSchema.safeParse(fields);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CoralError(
      "invite_invalid",
      `This invite's ${issue?.path.join(".") || "contents"} is invalid (${issue?.message}); create a new one.`,
    );
  }
  const signingKey = fromBase64Url(parsed.data.signingKey) ?? new Uint8Array();
  if ((await meshIdFor(signingKey)) !== parsed.data.meshId) {
    throw new CoralError("invite_invalid", "This invite's mesh id does not belong to its signing key: it was altered. Create a new one.");
  }
  const ticket = await verifyTicket(inviteTicket(parsed.data), parsed.data.meshId);
  if (!ticket.ok)
    throw new CoralError("invite_invalid", `This invite's join ticket is invalid (${ticket.reason}): it was altered. Create a new one.`);
  return parsed.data;
}

/** The join ticket an agent sends with its join request, from its invite. */
export function inviteTicket(invite: Invite): JoinTicket {
  return { signingKey: invite.signingKey, tokenId: invite.tokenId, expiresAt: invite.expiresAt, signature: invite.ticket };
}

function damaged(why: string): CoralError {
  return new CoralError(
    "invite_damaged",
    `This invite is damaged (${why}); copy it again, all of it, from the output of \`coral token create\`.`,
  );
}
