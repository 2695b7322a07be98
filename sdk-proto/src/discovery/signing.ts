/**
 * Signed requests to discovery (docs/discovery.md, "Signing"). Runtime-neutral:
 * WebCrypto Ed25519 works the same in Node 20 and in workerd.
 */
import { fromBase64Url, randomBytes, sha256, toBase32, toBase64Url, toHex, utf8 } from "../encoding.js";
import { isAcceptableSignature, weakSigningKeyReason } from "./ed25519.js";

export const SIGNATURE_SCHEME = "coral-v1";

export const signatureHeaders = {
  key: "coral-key",
  timestamp: "coral-timestamp",
  nonce: "coral-nonce",
  signature: "coral-signature",
} as const;

const ED25519 = { name: "Ed25519" } as const;

/** WebCrypto's key type, spelled so that it resolves under both Node's and the Workers' type definitions. */
export type WebCryptoKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/;
const TIMESTAMP_RE = /^[1-9][0-9]{0,15}$/;

export interface RequestToSign {
  method: string;
  /** Path and query exactly as sent, e.g. `/v1/meshes/abc/joins?after=12`. */
  path: string;
  body: Uint8Array | string;
}

export interface SignatureParts {
  key: string;
  timestamp: number;
  nonce: string;
  signature: string;
}

/** The exact bytes a signature covers. */
export async function canonicalRequest(request: RequestToSign, timestamp: number, nonce: string): Promise<string> {
  const bodyHash = toHex(await sha256(request.body));
  return [SIGNATURE_SCHEME, request.method.toUpperCase(), request.path, String(timestamp), nonce, bodyHash].join("\n");
}

/** A mesh id commits to its coordinator's signing key: base32(SHA-256(key)[0..20]). */
export async function meshIdFor(signingPublicKey: Uint8Array): Promise<string> {
  return toBase32((await sha256(signingPublicKey)).subarray(0, 20));
}

export interface SigningKeyPair {
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  privateKey: WebCryptoKey;
}

export async function generateSigningKeyPair(): Promise<SigningKeyPair> {
  const pair = (await crypto.subtle.generateKey(ED25519, true, ["sign", "verify"])) as {
    publicKey: WebCryptoKey;
    privateKey: WebCryptoKey;
  };
  const publicKey = new Uint8Array((await crypto.subtle.exportKey("raw", pair.publicKey)) as ArrayBuffer);
  return { publicKey, privateKey: pair.privateKey };
}

/** PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): a fixed 16-byte prefix. */
const PKCS8_ED25519_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

/** Rebuilds a key pair from its 32-byte seed, the form Coral keeps private keys in on disk. */
export async function signingKeyPairFromSeed(seed: Uint8Array): Promise<SigningKeyPair> {
  if (seed.length !== 32) throw new RangeError(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
  const pkcs8 = new Uint8Array(PKCS8_ED25519_PREFIX.length + 32);
  pkcs8.set(PKCS8_ED25519_PREFIX);
  pkcs8.set(seed, PKCS8_ED25519_PREFIX.length);
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, ED25519, true, ["sign"]);
  const jwk = (await crypto.subtle.exportKey("jwk", privateKey)) as { x?: string };
  const publicKey = jwk.x === undefined ? null : fromBase64Url(jwk.x);
  if (publicKey?.length !== 32) throw new Error("could not derive the Ed25519 public key from the seed");
  return { publicKey, privateKey };
}

/** Signs a request; returns the four headers to send with it. */
export async function signRequest(
  keys: SigningKeyPair,
  request: RequestToSign,
  options: { timestamp?: number; nonce?: string } = {},
): Promise<Record<string, string>> {
  const timestamp = options.timestamp ?? Date.now();
  const nonce = options.nonce ?? toBase64Url(randomBytes(16));
  const canonical = await canonicalRequest(request, timestamp, nonce);
  const signature = new Uint8Array(await crypto.subtle.sign(ED25519, keys.privateKey, utf8.encode(canonical)));
  return {
    [signatureHeaders.key]: toBase64Url(keys.publicKey),
    [signatureHeaders.timestamp]: String(timestamp),
    [signatureHeaders.nonce]: nonce,
    [signatureHeaders.signature]: toBase64Url(signature),
  };
}

export type ParsedSignature =
  | { ok: true; parts: SignatureParts; publicKey: Uint8Array; signature: Uint8Array }
  | { ok: false; reason: "missing" | "malformed"; detail: string };

/** Reads the signature headers without verifying anything. */
export function parseSignatureHeaders(get: (name: string) => string | null | undefined): ParsedSignature {
  const key = get(signatureHeaders.key);
  const timestamp = get(signatureHeaders.timestamp);
  const nonce = get(signatureHeaders.nonce);
  const signature = get(signatureHeaders.signature);
  const absent = Object.entries({ key, timestamp, nonce, signature })
    .filter(([, value]) => value == null)
    .map(([name]) => signatureHeaders[name as keyof typeof signatureHeaders]);
  if (absent.length === 4)
    return { ok: false, reason: "missing", detail: `send the ${Object.values(signatureHeaders).join(", ")} headers` };
  if (absent.length > 0) return { ok: false, reason: "malformed", detail: `missing header ${absent.join(", ")}` };
  const publicKey = fromBase64Url(key as string);
  if (publicKey?.length !== 32)
    return { ok: false, reason: "malformed", detail: `${signatureHeaders.key} must be a 32-byte Ed25519 key in base64url` };
  if (!TIMESTAMP_RE.test(timestamp as string))
    return { ok: false, reason: "malformed", detail: `${signatureHeaders.timestamp} must be Unix time in milliseconds` };
  if (!NONCE_RE.test(nonce as string))
    return { ok: false, reason: "malformed", detail: `${signatureHeaders.nonce} must be 16 to 64 base64url characters` };
  const sig = fromBase64Url(signature as string);
  if (sig?.length !== 64)
    return { ok: false, reason: "malformed", detail: `${signatureHeaders.signature} must be a 64-byte Ed25519 signature in base64url` };
  return {
    ok: true,
    parts: { key: key as string, timestamp: Number(timestamp), nonce: nonce as string, signature: signature as string },
    publicKey,
    signature: sig,
  };
}

/**
 * Verifies an Ed25519 signature over a canonical request; false for any failure. Refuses,
 * as libsodium does, small-order and non-canonical keys, small-order R and unreduced S,
 * some of which WebCrypto's verifier accepts (see ed25519.ts).
 */
export async function verifyCanonical(publicKey: Uint8Array, canonical: string, signature: Uint8Array): Promise<boolean> {
  if (weakSigningKeyReason(publicKey) !== null || !isAcceptableSignature(signature)) return false;
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, ED25519, false, ["verify"]);
    return await crypto.subtle.verify(ED25519, key, signature, utf8.encode(canonical));
  } catch {
    // Keys that are not valid curve points fail to import: that is a bad signature, not a crash.
    return false;
  }
}
