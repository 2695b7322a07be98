/**
 * The checks libsodium's `crypto_sign_verify_detached` makes before it verifies, which
 * plain RFC 8032 verifiers (tweetnacl, OpenSSL through WebCrypto) skip:
 *
 * - a public key must be a canonical encoding (y < p) and not a point of small order;
 * - the signature's R must not be a point of small order;
 * - the signature's S must be canonical (S < L).
 *
 * With a small-order public key A, [k]A takes one of at most 8 values whatever the
 * message, so R = -[k]A, S = 0 "verifies" for about one message in eight without any
 * private key; the identity point verifies every message. A mesh id derived from such
 * a key would be writable by anyone.
 */

/** 2^255 - 19. */
const P = (1n << 255n) - 19n;
/** The order of the prime-order subgroup: 2^252 + 27742317777372353535851937790883648493. */
const L = (1n << 252n) + 27742317777372353535851937790883648493n;
/** The y coordinate of the points of order 8 (the other one is P - this). */
const ORDER_8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;

/**
 * The y values, sign bit cleared, that libsodium refuses as small order: 0 (order 4),
 * 1 (the identity), the two of order 8, P - 1 (order 2), and the non-canonical P and P + 1
 * (which decode as 0 and 1).
 */
const SMALL_ORDER_Y = new Set([0n, 1n, ORDER_8_Y, P - ORDER_8_Y, P - 1n, P, P + 1n]);

function littleEndian(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
  return value;
}

/** The y coordinate a 32-byte point encoding carries (the top bit is the sign of x). */
function encodedY(point: Uint8Array): bigint {
  return littleEndian(point) & ((1n << 255n) - 1n);
}

/** True when a 32-byte encoding names a point of order 1, 2, 4 or 8, in any of its spellings. */
export function hasSmallOrder(point: Uint8Array): boolean {
  return point.length === 32 && SMALL_ORDER_Y.has(encodedY(point));
}

/** True when a 32-byte point encoding is the one canonical spelling of its y (y < p). */
export function isCanonicalPoint(point: Uint8Array): boolean {
  return point.length === 32 && encodedY(point) < P;
}

/** True when a 32-byte scalar is reduced (S < L), so a signature has one spelling only. */
export function isCanonicalScalar(scalar: Uint8Array): boolean {
  return scalar.length === 32 && littleEndian(scalar) < L;
}

/**
 * Why an Ed25519 public key is refused, or null when it is acceptable. Checks the
 * encoding only; whether it decodes to a curve point is left to the verifier.
 */
export function weakSigningKeyReason(publicKey: Uint8Array): string | null {
  if (publicKey.length !== 32) return "it is not 32 bytes";
  if (hasSmallOrder(publicKey)) return "it is a point of small order, for which signatures can be forged without a private key";
  if (!isCanonicalPoint(publicKey)) return "it is not the canonical encoding of a point";
  return null;
}

/** The libsodium checks on a signature's two halves: R not of small order, S reduced. */
export function isAcceptableSignature(signature: Uint8Array): boolean {
  return signature.length === 64 && !hasSmallOrder(signature.subarray(0, 32)) && isCanonicalScalar(signature.subarray(32));
}
