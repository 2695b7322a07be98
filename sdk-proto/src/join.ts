/**
 * What travels sealed through discovery during a join: NaCl boxes (X25519,
 * XSalsa20-Poly1305) between the agent's and the coordinator's WireGuard keys.
 * Discovery stores ciphertext it cannot read, and cannot swap a key unnoticed: a box
 * opens only with the exact pair of keys it was made with.
 */
import nacl from "tweetnacl";
import * as z from "zod";
import { relayTicketSchema } from "./discovery/relay.js";
import { fromBase64, randomBytes, toBase64Url, utf8 } from "./encoding.js";
import { CoralError } from "./errors/index.js";
import { duplicateJsonKey } from "./json.js";

export const joinPayloadSchema = z.strictObject({
  v: z.literal(1),
  tokenId: z.string().regex(/^[a-z0-9]{8,32}$/),
  secret: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  /** The agent's name in the mesh (defaults to its hostname). */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "an agent name is lowercase letters, digits and dashes"),
  hostname: z.string().max(253),
  os: z.string().max(64),
  arch: z.string().max(32),
  agentVersion: z.string().max(64),
  /**
   * The agent's WireGuard UDP port. With the address discovery saw the request come from,
   * it is where the coordinator sends first, so that a filtering NAT in front of the
   * coordinator lets the agent's handshake in (and a NAT that keeps ports lets its reply out).
   */
  listenPort: z.number().int().min(1).max(65535).optional(),
});
export type JoinPayload = z.infer<typeof joinPayloadSchema>;

export const joinAcceptedSchema = z.strictObject({
  v: z.literal(1),
  ok: z.literal(true),
  /** The agent's own address in the mesh, e.g. 100.64.0.7. */
  meshIp: z.string(),
  /** The mesh prefix to route through the tunnel, 100.64.0.0/10. */
  meshPrefix: z.string(),
  coordinatorMeshIp: z.string(),
  coordinatorWireguardKey: z.string(),
  /** Where to reach the coordinator's WireGuard port, best first. */
  endpoints: z.array(z.string()).max(32),
  /** The agent's address as discovery saw it (its NAT mapping), for information. */
  observedAddress: z.string().nullable(),
  grpcPort: z.number().int().min(1).max(65535),
  heartbeatIntervalMs: z.number().int().positive(),
  /**
   * Lets the agent use the mesh's relay at discovery when no direct path comes up, before it
   * has ever reached the coordinator; renewed over the mesh when it registers.
   */
  relayTicket: relayTicketSchema.optional(),
});
export const joinRefusedSchema = z.strictObject({
  v: z.literal(1),
  ok: z.literal(false),
  code: z.string(),
  message: z.string(),
});
export const joinAnswerPayloadSchema = z.discriminatedUnion("ok", [joinAcceptedSchema, joinRefusedSchema]);
export type JoinAccepted = z.infer<typeof joinAcceptedSchema>;
export type JoinAnswerPayload = z.infer<typeof joinAnswerPayloadSchema>;

const key = (base64: string, what: string) => {
  const bytes = fromBase64(base64);
  if (bytes?.length !== 32) throw new CoralError("sealed_invalid", `${what} is not a 32-byte key in base64.`);
  return bytes;
};

/**
 * Seals `payload` from the sender's private key to the recipient's public key: nonce ‖ box
 * (docs/discovery.md, "Sealed payloads"). `nonce` is for test vectors only: a nonce must never
 * be used twice with the same pair of keys.
 */
export function seal(
  payload: unknown,
  senderPrivateKey: string,
  recipientPublicKey: string,
  options: { nonce?: Uint8Array } = {},
): Uint8Array {
  const nonce = options.nonce ?? randomBytes(nacl.box.nonceLength);
  if (nonce.length !== nacl.box.nonceLength) throw new RangeError(`a box nonce is ${nacl.box.nonceLength} bytes`);
  const box = nacl.box(
    utf8.encode(JSON.stringify(payload)),
    nonce,
    key(recipientPublicKey, "the recipient's key"),
    key(senderPrivateKey, "the sender's key"),
  );
  const out = new Uint8Array(nonce.length + box.length);
  out.set(nonce);
  out.set(box, nonce.length);
  return out;
}

/** Opens a sealed payload and validates it; any failure is `sealed_invalid`, saying which. */
export function unseal<S extends z.ZodType>(
  sealed: Uint8Array,
  recipientPrivateKey: string,
  senderPublicKey: string,
  schema: S,
): z.infer<S> {
  if (sealed.length <= nacl.box.nonceLength + nacl.box.overheadLength)
    throw new CoralError("sealed_invalid", "The sealed payload is too short to be a box.");
  const opened = nacl.box.open(
    sealed.subarray(nacl.box.nonceLength),
    sealed.subarray(0, nacl.box.nonceLength),
    key(senderPublicKey, "the sender's key"),
    key(recipientPrivateKey, "the recipient's key"),
  );
  if (!opened)
    throw new CoralError("sealed_invalid", "The sealed payload does not open with these keys: it was altered, or sealed for someone else.");
  let json: unknown;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(opened);
    json = JSON.parse(text);
  } catch {
    throw new CoralError("sealed_invalid", "The sealed payload opened but is not UTF-8 JSON.");
  }
  if (duplicateJsonKey(text) !== undefined) throw new CoralError("sealed_invalid", "The sealed payload has a key twice in one object.");
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CoralError("sealed_invalid", `The sealed payload's ${issue?.path.join(".") || "contents"} is invalid: ${issue?.message}.`);
  }
  return parsed.data;
}

/**
 * How a coordinator record names a removed agent: the first 16 bytes of SHA-512 of its
 * WireGuard public key, base64url. The agent recognises itself; others learn no key.
 */
export function removalMark(wireguardKey: string): string {
  return toBase64Url(nacl.hash(utf8.encode(wireguardKey)).subarray(0, 16));
}
