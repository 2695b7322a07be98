import { createPrivateKey, createPublicKey, sign as nodeSign } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  canonicalRequest,
  fromBase64Url,
  generateSigningKeyPair,
  meshIdFor,
  parseSignatureHeaders,
  signatureHeaders,
  signingKeyPairFromSeed,
  signRequest,
  verifyCanonical,
} from "../src/index.js";

// The worked example of docs/discovery.md#signing; other implementations can check against it.
const vector = {
  seed: new Uint8Array(32).map((_, i) => i),
  publicKey: "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
  meshId: "kzdvvj2umnduyauf35o36k6kw462mujv",
  path: "/v1/meshes/kzdvvj2umnduyauf35o36k6kw462mujv/coordinator",
  body: '{"v":1,"wireguardKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","listenPort":51820,"endpoints":["192.0.2.10:51820"]}',
  timestamp: 1764400000000,
  nonce: "AAAAAAAAAAAAAAAAAAAAAA",
  canonical: [
    "coral-v1",
    "PUT",
    "/v1/meshes/kzdvvj2umnduyauf35o36k6kw462mujv/coordinator",
    "1764400000000",
    "AAAAAAAAAAAAAAAAAAAAAA",
    "1f2c223cab5724b29442621acc22bc3f56ed8c6e3c7dc198a0009245df1321d9",
  ].join("\n"),
  signature: "SoHGmwwJtS3bKhRbCviqcG8xi4VsMtWWz7hNHoxy97QGlDLtJov02LiB-KTB_Qw3VySwIvySCOcIKJZviOsDDg",
};

describe("request signing", () => {
  it("reproduces the documented worked example", async () => {
    const keys = await signingKeyPairFromSeed(vector.seed);
    expect(Buffer.from(keys.publicKey).toString("base64url")).toBe(vector.publicKey);
    expect(await meshIdFor(keys.publicKey)).toBe(vector.meshId);
    expect(await canonicalRequest({ method: "put", path: vector.path, body: vector.body }, vector.timestamp, vector.nonce)).toBe(
      vector.canonical,
    );
    const headers = await signRequest(
      keys,
      { method: "PUT", path: vector.path, body: vector.body },
      { timestamp: vector.timestamp, nonce: vector.nonce },
    );
    expect(headers).toEqual({
      "coral-key": vector.publicKey,
      "coral-timestamp": String(vector.timestamp),
      "coral-nonce": vector.nonce,
      "coral-signature": vector.signature,
    });
  });

  it("agrees with an independent Ed25519 implementation (node:crypto)", async () => {
    const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(vector.seed)]);
    const privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    const publicDer = createPublicKey(privateKey).export({ format: "der", type: "spki" });
    expect(publicDer.subarray(-32).toString("base64url")).toBe(vector.publicKey);
    expect(nodeSign(null, Buffer.from(vector.canonical), privateKey).toString("base64url")).toBe(vector.signature);
  });

  it("verifies only the exact request that was signed", async () => {
    const keys = await generateSigningKeyPair();
    const request = { method: "GET", path: "/v1/meshes/x/joins?after=3", body: "" };
    const headers = await signRequest(keys, request);
    const parsed = parseSignatureHeaders((name) => headers[name]);
    if (!parsed.ok) throw new Error(parsed.detail);
    const { timestamp, nonce } = parsed.parts;
    const verify = (r: typeof request, ts = timestamp, n = nonce) =>
      canonicalRequest(r, ts, n).then((c) => verifyCanonical(keys.publicKey, c, parsed.signature));
    expect(await verify(request)).toBe(true);
    expect(await verify({ ...request, path: "/v1/meshes/x/joins?after=4" })).toBe(false);
    expect(await verify({ ...request, method: "PUT" })).toBe(false);
    expect(await verify({ ...request, body: " " })).toBe(false);
    expect(await verify(request, timestamp + 1)).toBe(false);
    expect(await verify(request, timestamp, `${nonce}A`)).toBe(false);
    const other = await generateSigningKeyPair();
    expect(await verifyCanonical(other.publicKey, await canonicalRequest(request, timestamp, nonce), parsed.signature)).toBe(false);
  });

  it("says which signature header is missing or malformed", async () => {
    const keys = await generateSigningKeyPair();
    const headers = await signRequest(keys, { method: "GET", path: "/", body: "" });
    const without = (name: string) => (h: string) => (h === name ? undefined : headers[h]);
    expect(parseSignatureHeaders(() => undefined)).toMatchObject({ ok: false, reason: "missing" });
    expect(parseSignatureHeaders(without(signatureHeaders.nonce))).toMatchObject({
      ok: false,
      reason: "malformed",
      detail: "missing header coral-nonce",
    });
    const bad = (name: string, value: string) => parseSignatureHeaders((h) => (h === name ? value : headers[h]));
    expect(bad("coral-key", "AAAA")).toMatchObject({ ok: false, detail: expect.stringContaining("coral-key") });
    expect(bad("coral-timestamp", "12.5")).toMatchObject({ ok: false, detail: expect.stringContaining("coral-timestamp") });
    expect(bad("coral-timestamp", "0123")).toMatchObject({ ok: false });
    expect(bad("coral-nonce", "short")).toMatchObject({ ok: false, detail: expect.stringContaining("coral-nonce") });
    expect(bad("coral-signature", "AAAA")).toMatchObject({ ok: false, detail: expect.stringContaining("coral-signature") });
  });

  it("rebuilds the same key pair from a seed every time", async () => {
    const a = await signingKeyPairFromSeed(vector.seed);
    const b = await signingKeyPairFromSeed(vector.seed);
    expect(a.publicKey).toEqual(b.publicKey);
    await expect(signingKeyPairFromSeed(new Uint8Array(31))).rejects.toThrow(/32 bytes/);
    expect(fromBase64Url(vector.signature)).toHaveLength(64);
  });
});
