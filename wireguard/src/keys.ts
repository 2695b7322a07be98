/** WireGuard keys (Curve25519), in the padded base64 that `wg` reads and prints. */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";

export interface WireGuardKeyPair {
  privateKey: string;
  publicKey: string;
}

// DER prefixes of X25519 keys (RFC 8410): the raw 32 bytes follow.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX_LENGTH = 12;

export function generateKeyPair(): WireGuardKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return {
    privateKey: privateKey.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_PREFIX.length).toString("base64"),
    publicKey: publicKey.export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX_LENGTH).toString("base64"),
  };
}

export function publicKeyOf(privateKey: string): string {
  const raw = Buffer.from(privateKey, "base64");
  if (raw.length !== 32) throw new RangeError("a WireGuard private key is 32 bytes of base64");
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
  return createPublicKey(key).export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX_LENGTH).toString("base64");
}
