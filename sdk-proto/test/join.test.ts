import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { joinAnswerPayloadSchema, joinPayloadSchema, seal, toBase64, unseal } from "../src/index.js";

const pair = () => {
  const k = nacl.box.keyPair();
  return { privateKey: toBase64(k.secretKey), publicKey: toBase64(k.publicKey) };
};
const payload = {
  v: 1 as const,
  tokenId: "abcdefgh12",
  secret: "A".repeat(43),
  name: "web-1",
  hostname: "web-1.internal",
  os: "linux",
  arch: "x64",
  agentVersion: "0.1.0",
};

describe("sealed join payloads", () => {
  it("open only for the recipient, and only from the claimed sender", () => {
    const agent = pair();
    const coordinator = pair();
    const sealed = seal(payload, agent.privateKey, coordinator.publicKey);
    expect(new TextDecoder().decode(sealed)).not.toContain(payload.secret);
    expect(unseal(sealed, coordinator.privateKey, agent.publicKey, joinPayloadSchema)).toEqual(payload);
    // Discovery swapping in another agent key, or anyone else opening it, fails.
    const mallory = pair();
    expect(() => unseal(sealed, coordinator.privateKey, mallory.publicKey, joinPayloadSchema)).toThrow(
      expect.objectContaining({ code: "sealed_invalid" }),
    );
    expect(() => unseal(sealed, mallory.privateKey, agent.publicKey, joinPayloadSchema)).toThrow(/does not open/);
  });

  it("detect a flipped bit and a payload of the wrong shape", () => {
    const agent = pair();
    const coordinator = pair();
    const sealed = seal(payload, agent.privateKey, coordinator.publicKey);
    const flipped = sealed.slice();
    flipped[40] = (flipped[40] ?? 0) ^ 1;
    expect(() => unseal(flipped, coordinator.privateKey, agent.publicKey, joinPayloadSchema)).toThrow(/does not open/);
    const wrongShape = seal({ v: 1, ok: "yes" }, coordinator.privateKey, agent.publicKey);
    expect(() => unseal(wrongShape, agent.privateKey, coordinator.publicKey, joinAnswerPayloadSchema)).toThrow(
      expect.objectContaining({ code: "sealed_invalid" }),
    );
    expect(() => unseal(new Uint8Array(10), agent.privateKey, coordinator.publicKey, joinPayloadSchema)).toThrow(/too short/);
  });
});
