import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as z from "zod";
import { fromBase64, fromBase64Url, joinPayloadSchema, seal, toBase64Url, unseal } from "../src/index.js";

const docs = readFileSync(new URL("../../docs/discovery.md", import.meta.url), "utf8");
const block = /<!-- sealed-vector:[^>]*-->\s*```text\n([\s\S]*?)\n```/.exec(docs)?.[1] ?? "";
const field = (name: string) => new RegExp(`^${name}:\\s+(.+)$`, "m").exec(block)?.[1]?.trim() ?? "";
const hex = (text: string) => Uint8Array.from(text.match(/../g) ?? [], (byte) => Number.parseInt(byte, 16));

describe("the sealed payload test vector in docs/discovery.md", () => {
  it("is what seal() makes, byte for byte, and what the coordinator opens", () => {
    expect(block).not.toBe("");
    const agentPrivate = field("agent private key");
    const coordinatorPrivate = field("coordinator private key");
    const coordinatorPublic = field("coordinator public key");
    const agentPublic = field("agent public key");
    // The keys are the documented byte sequences.
    expect(fromBase64(agentPrivate)).toEqual(Uint8Array.from({ length: 32 }, (_, i) => i + 1));
    expect(fromBase64(coordinatorPrivate)).toEqual(Uint8Array.from({ length: 32 }, (_, i) => 0x41 + i));
    const nonce = hex(field("nonce \\(hex\\)"));
    expect(nonce).toEqual(Uint8Array.from({ length: 24 }, (_, i) => i));
    const plaintext = field("plaintext");
    const sealedText = (block.split(/^sealed:$/m)[1] ?? "").replace(/\s+/g, "");

    const sealed = seal(JSON.parse(plaintext), agentPrivate, coordinatorPublic, { nonce });
    expect(toBase64Url(sealed)).toBe(sealedText);
    // Nonce first, then the 16-byte tag and the ciphertext: 40 bytes more than the plaintext.
    expect(sealed.subarray(0, 24)).toEqual(nonce);
    expect(sealed.length).toBe(new TextEncoder().encode(plaintext).length + 40);
    const opened = unseal(fromBase64Url(sealedText) ?? new Uint8Array(), coordinatorPrivate, agentPublic, joinPayloadSchema);
    expect(opened).toEqual(JSON.parse(plaintext));
    // The public keys belong to the private ones: the coordinator's box back opens for the agent.
    const back = seal({ v: 1 }, coordinatorPrivate, agentPublic, { nonce });
    expect(unseal(back, agentPrivate, coordinatorPublic, z.strictObject({ v: z.literal(1) }))).toEqual({ v: 1 });
  });
});
