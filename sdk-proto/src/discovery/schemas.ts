import * as z from "zod";
import { fromBase64, fromBase64Url } from "../encoding.js";
import { weakSigningKeyReason } from "./ed25519.js";
import { discoveryLimits } from "./limits.js";
import { joinTicketSchema } from "./ticket.js";

/** A mesh id: base32 of the first 20 bytes of SHA-256(coordinator signing key). */
export const meshIdSchema = z.string().regex(/^[a-z2-7]{32}$/, "a mesh id is 32 characters of lowercase base32");

/** A join id: 16 random bytes, base64url. */
export const joinIdSchema = z.string().regex(/^[A-Za-z0-9_-]{22}$/, "a join id is 22 characters of base64url");

/** A join-list cursor: the sequence number of the last join request seen. */
export const cursorSchema = z.string().regex(/^(0|[1-9][0-9]{0,14})$/, "a cursor is a decimal number from a previous page");

/** A WireGuard public key as `wg` prints it: 32 bytes, padded base64. */
export const wireguardKeySchema = z
  .string()
  .length(44)
  .refine((text) => fromBase64(text)?.length === 32, "a WireGuard key is 32 bytes in base64 (44 characters)");

/** An Ed25519 public key: 32 bytes, base64url, neither of small order nor non-canonical. */
export const signingKeySchema = z
  .string()
  .length(43)
  .refine((text) => fromBase64Url(text)?.length === 32, "a signing key is 32 bytes in base64url (43 characters)")
  .refine(
    (text) => weakSigningKeyReason(fromBase64Url(text) ?? new Uint8Array(32)) === null,
    "a signing key must not be a small-order or non-canonical Ed25519 point",
  );

export const sealedSchema = z
  .string()
  .min(1)
  .max(discoveryLimits.maxSealedLength)
  .refine((text) => fromBase64Url(text) !== null, "sealed data is base64url without padding");

const HOSTNAME_RE = /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IPV4_RE = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export interface Endpoint {
  host: string;
  port: number;
}

/** Parses `ipv4:port`, `[ipv6]:port` or `hostname:port`; null when it is none of these. */
export function parseEndpoint(text: string): Endpoint | null {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!match) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65535 || String(port) !== match[3]) return null;
  const v6 = match[1];
  if (v6 !== undefined) return isIpv6(v6) ? { host: v6, port } : null;
  const host = match[2] ?? "";
  if (IPV4_RE.test(host)) return { host, port };
  // Something that looks like dotted numbers but is not a valid IPv4 is refused, not taken as a name.
  if (/^[\d.]+$/.test(host) || !HOSTNAME_RE.test(host)) return null;
  return { host, port };
}

function isIpv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]{2,45}$/.test(text)) return false;
  const doubleColons = text.split("::").length - 1;
  if (doubleColons > 1) return false;
  const groups = text.split(":").filter((g) => g !== "");
  const last = groups.at(-1) ?? "";
  const v4Tail = last.includes(".") ? (IPV4_RE.test(last) ? 2 : Number.NaN) : 0;
  if (Number.isNaN(v4Tail)) return false;
  const hexGroups = v4Tail ? groups.slice(0, -1) : groups;
  if (!hexGroups.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  const total = hexGroups.length + v4Tail;
  return doubleColons ? total < 8 : total === 8;
}

export const endpointSchema = z
  .string()
  .max(discoveryLimits.maxEndpointLength)
  .refine((text) => parseEndpoint(text) !== null, "an endpoint is host:port, with [brackets] around an IPv6 address");

/** Body of `PUT /v1/meshes/{meshId}/coordinator`, signed by the coordinator. */
export const coordinatorRegistrationSchema = z.strictObject({
  v: z.literal(1),
  /** The coordinator's WireGuard public key. */
  wireguardKey: wireguardKeySchema,
  /** The UDP port its WireGuard interface listens on. */
  listenPort: z.number().int().min(1).max(65535),
  /** Endpoint candidates the coordinator knows for itself (LAN addresses, a public name). */
  endpoints: z.array(endpointSchema).max(discoveryLimits.maxEndpoints),
  /** A label a person may recognise; not used for anything else. */
  name: z
    .string()
    .min(1)
    .max(discoveryLimits.maxNameLength)
    .regex(/^[\x20-\x7e]+$/, "a name is printable ASCII")
    .optional(),
  /**
   * Agents removed from the mesh lately (`coral agents remove`), each as the removal mark of its
   * WireGuard key (see removalMark), so that a removed agent, which can no longer reach the hub,
   * learns it from the record it verifies against its pinned key.
   */
  removed: z
    .array(z.string().regex(/^[A-Za-z0-9_-]{22}$/, "a removal mark is 16 bytes of base64url"))
    .max(discoveryLimits.maxRemoved)
    .optional(),
});
export type CoordinatorRegistration = z.infer<typeof coordinatorRegistrationSchema>;

/** Body of `POST /v1/meshes/{meshId}/joins`, sent by an agent. */
export const joinRequestSchema = z.strictObject({
  v: z.literal(1),
  /** The agent's WireGuard public key; also the sealing key of its payload. */
  wireguardKey: wireguardKeySchema,
  /** NaCl box from the agent's to the coordinator's WireGuard key; opaque to discovery. */
  sealed: sealedSchema,
  /**
   * The invite's join ticket: required. Optional here only so that a request without one
   * (from an agent with an invite made before tickets) gets its own code, `join_ticket_missing`.
   */
  ticket: joinTicketSchema.optional(),
});
export type JoinRequest = z.infer<typeof joinRequestSchema>;

/** Body of `PUT /v1/meshes/{meshId}/joins/{joinId}/answer`, signed by the coordinator. */
export const joinAnswerSchema = z.strictObject({
  v: z.literal(1),
  sealed: sealedSchema,
});
export type JoinAnswer = z.infer<typeof joinAnswerSchema>;

// Responses. Discovery is untrusted, so clients parse what it answers with these too.

export const healthResponseSchema = z.object({
  status: z.literal("ok"),
  service: z.literal("coral-discovery"),
  version: z.string(),
  apiVersion: z.literal("v1"),
  time: z.number().int(),
});
export type HealthResponse = z.infer<typeof healthResponseSchema>;

/** The exact signed request a coordinator record came from, so anyone can re-verify it. */
export const signedEnvelopeSchema = z.object({
  method: z.literal("PUT"),
  path: z.string(),
  body: z.string(),
  timestamp: z.number().int(),
  nonce: z.string(),
  signature: z.string(),
});
export type SignedEnvelope = z.infer<typeof signedEnvelopeSchema>;

export const coordinatorRecordSchema = z.object({
  meshId: meshIdSchema,
  signingKey: signingKeySchema,
  registration: coordinatorRegistrationSchema,
  /** The address discovery saw the registration come from (not signed: a hint). */
  observedAddress: z.string().nullable(),
  signed: signedEnvelopeSchema,
  updatedAt: z.number().int(),
  expiresAt: z.number().int(),
});
export type CoordinatorRecord = z.infer<typeof coordinatorRecordSchema>;

export const joinCreatedSchema = z.object({
  joinId: joinIdSchema,
  expiresAt: z.number().int(),
});
export type JoinCreated = z.infer<typeof joinCreatedSchema>;

export const pendingJoinSchema = z.object({
  joinId: joinIdSchema,
  wireguardKey: wireguardKeySchema,
  sealed: z.string(),
  observedAddress: z.string().nullable(),
  createdAt: z.number().int(),
  expiresAt: z.number().int(),
});
export type PendingJoin = z.infer<typeof pendingJoinSchema>;

export const joinListSchema = z.object({
  joins: z.array(pendingJoinSchema),
  /** Pass as `after` to get only newer requests. */
  cursor: cursorSchema,
  /** True when this page was full and more may follow at once. */
  more: z.boolean(),
});
export type JoinList = z.infer<typeof joinListSchema>;

export const joinAnswerRecordSchema = z.object({
  joinId: joinIdSchema,
  sealed: z.string(),
  answeredAt: z.number().int(),
});
export type JoinAnswerRecord = z.infer<typeof joinAnswerRecordSchema>;

export const adminStatsSchema = z.object({
  meshes: z.number().int(),
  liveRecords: z.number().int(),
  pendingJoins: z.number().int(),
  answeredJoins: z.number().int(),
  refusals: z.record(z.string(), z.number().int()),
});
export type AdminStats = z.infer<typeof adminStatsSchema>;
