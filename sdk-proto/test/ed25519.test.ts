import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  type CoralError,
  DiscoveryClient,
  decodeInvite,
  encodeInvite,
  fromBase64Url,
  generateSigningKeyPair,
  hasSmallOrder,
  isAcceptableSignature,
  meshIdFor,
  signingKeySchema,
  toBase64Url,
  utf8,
  verifyCanonical,
  weakSigningKeyReason,
} from "../src/index.js";
import { smallOrderPoints } from "./small-order.js";

/** A "signature" made with no private key: R a small-order point, S = 0; found by trying messages. */
function forge(publicKey: Uint8Array, message: (attempt: number) => string): { message: string; signature: Uint8Array } | undefined {
  for (let attempt = 0; attempt < 400; attempt++) {
    for (const r of smallOrderPoints.canonical) {
      const signature = new Uint8Array(64);
      signature.set(r.bytes);
      const text = message(attempt);
      if (nacl.sign.detached.verify(utf8.encode(text), signature, publicKey)) return { message: text, signature };
    }
  }
  return undefined;
}

describe("small-order Ed25519 keys", () => {
  it("are the 8 small-order points and 6 non-canonical spellings of them", () => {
    expect(smallOrderPoints.canonical).toHaveLength(8);
    expect(smallOrderPoints.nonCanonical).toHaveLength(6);
    for (const point of [...smallOrderPoints.canonical, ...smallOrderPoints.nonCanonical]) {
      expect(hasSmallOrder(point.bytes), point.name).toBe(true);
      expect(weakSigningKeyReason(point.bytes), point.name).toMatch(/small order/);
      expect(signingKeySchema.safeParse(toBase64Url(point.bytes)).success, point.name).toBe(false);
    }
  });

  it("let tweetnacl accept a signature made without any private key; Coral refuses every one", async () => {
    for (const point of smallOrderPoints.canonical) {
      const forged = forge(point.bytes, (attempt) => `coral-v1\nPUT\n/v1/meshes/x/coordinator\n${attempt}`);
      // The forgery is real: a verifier without libsodium's checks accepts it.
      expect(forged, point.name).toBeDefined();
      if (!forged) continue;
      expect(await verifyCanonical(point.bytes, forged.message, forged.signature), point.name).toBe(false);
    }
  });

  it("refuse a non-canonical key that is not of small order, and accept a real key", async () => {
    // y = p + 2 ... 2^255 - 1 are spellings of y - p; every such key is refused, small order or not.
    const nonCanonical = new Uint8Array(32).fill(0xff);
    nonCanonical[0] = 0xf0;
    nonCanonical[31] = 0x7f;
    expect(hasSmallOrder(nonCanonical)).toBe(false);
    expect(weakSigningKeyReason(nonCanonical)).toMatch(/canonical/);
    const real = await generateSigningKeyPair();
    expect(weakSigningKeyReason(real.publicKey)).toBeNull();
  });

  it("refuse a signature whose S is not reduced (S + L), which has another spelling that verifies", async () => {
    const keys = await generateSigningKeyPair();
    const message = "coral-v1\nGET\n/v1/health\n1\nAAAAAAAAAAAAAAAAAAAAAA\ne3b0";
    const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, keys.privateKey, utf8.encode(message)));
    expect(await verifyCanonical(keys.publicKey, message, signature)).toBe(true);
    const s = signature.subarray(32).reduceRight((acc, byte) => (acc << 8n) | BigInt(byte), 0n);
    const l = (1n << 252n) + 27742317777372353535851937790883648493n;
    const malleated = signature.slice();
    let sl = s + l;
    for (let i = 32; i < 64; i++) {
      malleated[i] = Number(sl & 0xffn);
      sl >>= 8n;
    }
    expect(isAcceptableSignature(malleated)).toBe(false);
    expect(await verifyCanonical(keys.publicKey, message, malleated)).toBe(false);
    // R of small order is refused before any curve arithmetic.
    const smallR = signature.slice();
    smallR.set(smallOrderPoints.canonical[0]?.bytes ?? new Uint8Array(32));
    expect(isAcceptableSignature(smallR)).toBe(false);
  });

  it("are refused in invites and by the client's lookup", async () => {
    const identity = smallOrderPoints.canonical.find((p) => p.name === "identity")?.bytes ?? new Uint8Array(32);
    const meshId = await meshIdFor(identity);
    const invite = {
      discoveryUrl: "https://discovery.example",
      meshId,
      signingKey: toBase64Url(identity),
      tokenId: "abcdefgh12",
      secret: "A".repeat(43),
      expiresAt: Date.now() + 60_000,
      ticket: toBase64Url(new Uint8Array(64)),
    };
    await expect(encodeInvite(invite)).rejects.toThrow();
    let fetched = false;
    const client = new DiscoveryClient({
      url: "https://discovery.example",
      fetch: async () => {
        fetched = true;
        return new Response("{}");
      },
    });
    await expect(client.lookup(meshId, identity)).rejects.toThrow(
      expect.objectContaining({ code: "signing_key_weak" }) as unknown as CoralError,
    );
    expect(fetched).toBe(false);
    expect(fromBase64Url(invite.signingKey)).toEqual(identity);
    // decodeInvite refuses it too (built by hand, since encodeInvite will not make one).
    await expect(decodeInvite(await handMadeInvite(invite))).rejects.toThrow(/signingKey is invalid/);
  });
});

async function handMadeInvite(fields: Record<string, unknown>): Promise<string> {
  const payload = utf8.encode(JSON.stringify({ v: 2, ...fields }));
  const checksum = new Uint8Array(await crypto.subtle.digest("SHA-256", payload)).subarray(0, 4);
  const bytes = new Uint8Array(payload.length + 4);
  bytes.set(payload);
  bytes.set(checksum, payload.length);
  return `coral2_${toBase64Url(bytes)}`;
}
