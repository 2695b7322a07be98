import { canonicalRequest, meshIdFor, signatureHeaders, toBase64Url, utf8 } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { smallOrderPoints } from "../../sdk-proto/test/small-order.js";
import { dispatch, expectError, freshAddress, registration, snapshot } from "./helpers.js";

const identity = smallOrderPoints.canonical.find((point) => point.name === "identity")?.bytes ?? new Uint8Array(32);
/** R = the identity, S = 0: with the identity as the key, [S]B = R + [k]A holds for every message. */
const forgedSignature = (() => {
  const signature = new Uint8Array(64);
  signature.set(identity);
  return signature;
})();

async function forgedRegistration(key: Uint8Array, nonce = "AAAAAAAAAAAAAAAAAAAAAA") {
  const meshId = await meshIdFor(key);
  const path = `/v1/meshes/${meshId}/coordinator`;
  const body = JSON.stringify(registration());
  const timestamp = Date.now();
  const canonical = await canonicalRequest({ method: "PUT", path, body }, timestamp, nonce);
  const request = new Request(`https://discovery.test${path}`, {
    method: "PUT",
    body,
    headers: {
      "content-type": "application/json",
      "cf-connecting-ip": freshAddress(),
      [signatureHeaders.key]: toBase64Url(key),
      [signatureHeaders.timestamp]: String(timestamp),
      [signatureHeaders.nonce]: nonce,
      [signatureHeaders.signature]: toBase64Url(forgedSignature),
    },
  });
  return { meshId, canonical, request };
}

describe("small-order signing keys", () => {
  it("cannot write the mesh id derived from the identity point, though the forgery verifies in plain WebCrypto", async () => {
    const { meshId, canonical, request } = await forgedRegistration(identity);
    // The runtime's own Ed25519 accepts the forgery: without Coral's check the mesh would be anyone's.
    const raw = await crypto.subtle.importKey("raw", identity, { name: "Ed25519" }, false, ["verify"]);
    expect(await crypto.subtle.verify({ name: "Ed25519" }, raw, forgedSignature, utf8.encode(canonical))).toBe(true);
    const before = await snapshot(meshId);
    const body = await expectError(await dispatch(request), 401, "signing_key_weak");
    expect(body.message).toMatch(/small order/);
    expect(await snapshot(meshId)).toBe(before);
  });

  it("are refused as coral-key in every spelling, canonical or not", async () => {
    for (const point of [...smallOrderPoints.canonical, ...smallOrderPoints.nonCanonical]) {
      const { meshId, request } = await forgedRegistration(point.bytes);
      const body = await expectError(await dispatch(request), 401, "signing_key_weak");
      expect(body.message, point.name).toMatch(/small order/);
      expect(await snapshot(meshId)).toBe(JSON.stringify({ mesh: [], joins: [] }));
    }
  });
});
