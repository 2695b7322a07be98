import { describe, expect, it } from "vitest";
import { duplicateJsonKey, generateSigningKeyPair, meshIdFor, signRequest, toBase64, verifyRecord } from "../src/index.js";

describe("duplicateJsonKey", () => {
  it("finds a key given twice in one object, at any depth, decoded", () => {
    expect(duplicateJsonKey('{"a":1,"a":2}')).toBe("a");
    expect(duplicateJsonKey('{"a":1,"\\u0061":2}')).toBe("a");
    expect(duplicateJsonKey('{"x":{"b":1,"c":[{"d":1,"d":2}]}}')).toBe("d");
    expect(duplicateJsonKey('{"x":{"b":1},"b":2,"x":3}')).toBe("x");
  });

  it("accepts equal keys in different objects, and keys that only appear as values", () => {
    expect(duplicateJsonKey('{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}')).toBeUndefined();
    expect(duplicateJsonKey('{"a":"a","b":["a","a"],"c":"\\"a\\":1,{\\"a\\""}')).toBeUndefined();
    expect(duplicateJsonKey('{"a\\\\":1,"a":2}')).toBeUndefined();
    expect(duplicateJsonKey("[1,2,{}]")).toBeUndefined();
    expect(duplicateJsonKey('"a"')).toBeUndefined();
  });
});

describe("verifyRecord", () => {
  it("refuses a correctly signed record whose body has a key twice", async () => {
    const keys = await generateSigningKeyPair();
    const meshId = await meshIdFor(keys.publicKey);
    const path = `/v1/meshes/${meshId}/coordinator`;
    const wireguardKey = toBase64(new Uint8Array(32).fill(3));
    const body = `{"v":1,"wireguardKey":"${wireguardKey}","listenPort":51820,"endpoints":["192.0.2.1:1"],"endpoints":["203.0.113.66:1"]}`;
    const timestamp = Date.now();
    const headers = await signRequest(keys, { method: "PUT", path, body }, { timestamp, nonce: "AAAAAAAAAAAAAAAAAAAAAA" });
    const record = {
      meshId,
      signingKey: headers["coral-key"] ?? "",
      registration: { v: 1 as const, wireguardKey, listenPort: 51820, endpoints: ["192.0.2.1:1"] },
      observedAddress: null,
      signed: {
        method: "PUT" as const,
        path,
        body,
        timestamp,
        nonce: "AAAAAAAAAAAAAAAAAAAAAA",
        signature: headers["coral-signature"] ?? "",
      },
      updatedAt: timestamp,
      expiresAt: timestamp + 900_000,
    };
    await expect(verifyRecord(record, keys.publicKey)).rejects.toMatchObject({
      code: "record_unverified",
      message: expect.stringContaining("key twice"),
    });
    // Without the duplicate, the same construction verifies: the refusal is about the key alone.
    const clean = body.replace(/,"endpoints":\["203\.0\.113\.66:1"\]/, "");
    const cleanHeaders = await signRequest(keys, { method: "PUT", path, body: clean }, { timestamp, nonce: "AAAAAAAAAAAAAAAAAAAAAA" });
    const verified = await verifyRecord(
      { ...record, signed: { ...record.signed, body: clean, signature: cleanHeaders["coral-signature"] ?? "" } },
      keys.publicKey,
    );
    expect(verified.registration.endpoints).toEqual(["192.0.2.1:1"]);
  });
});
