import {
  CoralError,
  canonicalRequest,
  discoveryLimits,
  meshIdFor,
  parseSignatureHeaders,
  type SignatureParts,
  verifyCanonical,
  weakSigningKeyReason,
} from "@coral-mesh/sdk-proto";
import { ReplayCache } from "./replay-cache.js";

const replays = new ReplayCache();

export interface VerifiedRequest {
  parts: SignatureParts;
}

/**
 * Checks that a request was signed by the key its mesh id commits to, recently,
 * and only once. Order matters: the cheap checks run before any crypto.
 */
export async function verifySignedRequest(request: Request, meshId: string, body: Uint8Array, now: number): Promise<VerifiedRequest> {
  const parsed = parseSignatureHeaders((name) => request.headers.get(name));
  if (!parsed.ok) {
    throw parsed.reason === "missing"
      ? new CoralError("signature_missing", `This route needs a signed request: ${parsed.detail} (see docs/discovery.md#signing).`)
      : new CoralError("signature_malformed", `The signature headers are malformed: ${parsed.detail}.`);
  }
  const { parts, publicKey, signature } = parsed;
  const weak = weakSigningKeyReason(publicKey);
  if (weak) throw weakKeyError(weak);
  const skew = parts.timestamp - now;
  if (Math.abs(skew) > discoveryLimits.signatureWindowMs) {
    throw new CoralError(
      "signature_stale",
      `The request timestamp is ${Math.round(Math.abs(skew) / 1000)} s ${skew < 0 ? "behind" : "ahead of"} the server clock (limit ${discoveryLimits.signatureWindowMs / 1000} s); check the client's clock and sign again.`,
      { details: { serverTime: now } },
    );
  }
  if ((await meshIdFor(publicKey)) !== meshId) {
    throw new CoralError(
      "mesh_key_mismatch",
      "The signing key is not the one this mesh id was derived from; only the mesh's own coordinator can write to it.",
    );
  }
  const url = new URL(request.url);
  const canonical = await canonicalRequest({ method: request.method, path: url.pathname + url.search, body }, parts.timestamp, parts.nonce);
  if (!(await verifyCanonical(publicKey, canonical, signature))) {
    throw new CoralError(
      "signature_invalid",
      "The signature does not verify over this method, path, timestamp, nonce and body; sign exactly what is sent.",
    );
  }
  if (!replays.remember(parts.signature, parts.timestamp, now)) {
    throw new CoralError("signature_replayed", "This exact signed request was already accepted; sign every request afresh.");
  }
  return { parts };
}

export function weakKeyError(reason: string): CoralError {
  return new CoralError(
    "signing_key_weak",
    `The Ed25519 key is refused: ${reason}. Generate a new key pair (a real key is never of small order).`,
  );
}
