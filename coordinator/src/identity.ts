/**
 * The coordinator's identity: an Ed25519 signing key (the mesh id is its fingerprint)
 * and a WireGuard key, made on first start and reused ever after, so the mesh id never
 * changes. Key files are mode 0600 in a 0700 directory; looser files are refused, as
 * ssh refuses them.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoralError, fromBase64Url, meshIdFor, type SigningKeyPair, signingKeyPairFromSeed, toBase64Url } from "@coral-mesh/sdk-proto";
import { generateKeyPair, publicKeyOf, type WireGuardKeyPair } from "@coral-mesh/wireguard";

export interface Identity {
  meshId: string;
  signing: SigningKeyPair;
  wireguard: WireGuardKeyPair;
}

export const SIGNING_KEY_FILE = "signing.key";
export const WIREGUARD_KEY_FILE = "wireguard.key";

export async function loadOrCreateIdentity(dataDir: string): Promise<{ identity: Identity; created: boolean }> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const signingPath = join(dataDir, SIGNING_KEY_FILE);
  const wireguardPath = join(dataDir, WIREGUARD_KEY_FILE);
  const created = !existsSync(signingPath);
  if (created) writeSecret(signingPath, toBase64Url(randomBytes(32)));
  if (!existsSync(wireguardPath)) writeSecret(wireguardPath, generateKeyPair().privateKey);

  const seed = fromBase64Url(readSecret(signingPath));
  if (seed?.length !== 32)
    throw new CoralError("key_invalid", `${signingPath} is not a Coral signing key (32 bytes of base64url); restore it from a backup.`);
  const wireguardPrivate = readSecret(wireguardPath);
  let wireguardPublic: string;
  try {
    wireguardPublic = publicKeyOf(wireguardPrivate);
  } catch {
    throw new CoralError("key_invalid", `${wireguardPath} is not a WireGuard private key (32 bytes of base64); restore it from a backup.`);
  }
  const signing = await signingKeyPairFromSeed(seed);
  return {
    identity: {
      meshId: await meshIdFor(signing.publicKey),
      signing,
      wireguard: { privateKey: wireguardPrivate, publicKey: wireguardPublic },
    },
    created,
  };
}

/** The WireGuard private key of an identity made before, without making one (undefined before the first start). */
export function existingWireguardKey(dataDir: string): string | undefined {
  const path = join(dataDir, WIREGUARD_KEY_FILE);
  return existsSync(path) ? readSecret(path) : undefined;
}

function writeSecret(path: string, value: string): void {
  // "wx": never overwrite a key that appeared meanwhile.
  writeFileSync(path, `${value}\n`, { mode: 0o600, flag: "wx" });
}

function readSecret(path: string): string {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new CoralError(
      "key_permissions",
      `${path} is readable by other users (mode ${mode.toString(8).padStart(4, "0")}); run \`chmod 600 ${path}\` and start again.`,
    );
  }
  return readFileSync(path, "utf8").trim();
}
