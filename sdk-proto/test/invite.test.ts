import { describe, expect, it } from "vitest";
import {
  decodeInvite,
  encodeInvite,
  fromBase64Url,
  generateSigningKeyPair,
  type Invite,
  inviteTicket,
  meshIdFor,
  signTicket,
  toBase64Url,
  verifyTicket,
} from "../src/index.js";

async function invite(): Promise<Invite> {
  const keys = await generateSigningKeyPair();
  const tokenId = "tok1a2b3c4d";
  const expiresAt = 1_764_400_000_000;
  return {
    discoveryUrl: "https://coral-discovery.example.workers.dev",
    meshId: await meshIdFor(keys.publicKey),
    signingKey: toBase64Url(keys.publicKey),
    tokenId,
    secret: toBase64Url(new Uint8Array(32).fill(7)),
    expiresAt,
    ticket: await signTicket(keys, { tokenId, expiresAt }),
  };
}

/** Re-encodes an invite body with a correct checksum, as a deliberate tamperer would. */
async function reseal(fields: Record<string, unknown>): Promise<string> {
  const payload = new TextEncoder().encode(JSON.stringify(fields));
  const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", payload)).subarray(0, 4);
  return `coral2_${toBase64Url(new Uint8Array([...payload, ...sum]))}`;
}

describe("invites", () => {
  it("round-trip, as one token of URL-safe characters", async () => {
    const original = await invite();
    const text = await encodeInvite(original);
    expect(text).toMatch(/^coral2_[A-Za-z0-9_-]+$/);
    expect(await decodeInvite(text)).toEqual(original);
    expect(await decodeInvite(`  ${text}\n`)).toEqual(original);
  });

  it("say what is wrong with a damaged, truncated, foreign or future invite", async () => {
    const text = await encodeInvite(await invite());
    const flipped = text.slice(0, 40) + (text[40] === "A" ? "B" : "A") + text.slice(41);
    await expect(decodeInvite(flipped)).rejects.toMatchObject({ code: "invite_damaged", message: expect.stringContaining("checksum") });
    await expect(decodeInvite(text.slice(0, 30))).rejects.toMatchObject({ code: "invite_damaged" });
    await expect(decodeInvite(`${text.slice(0, 20)} ${text.slice(20)}`)).rejects.toMatchObject({
      code: "invite_malformed",
      message: expect.stringContaining("one line"),
    });
    await expect(decodeInvite("hello")).rejects.toMatchObject({
      code: "invite_malformed",
      message: expect.stringContaining('start with "coral2_"'),
    });
    await expect(decodeInvite(text.replace(/^coral2_/, "coral3_"))).rejects.toMatchObject({
      code: "invite_version",
      message: expect.stringContaining("upgrade coral-agent"),
    });
    await expect(decodeInvite(text.replace(/^coral2_/, "coral0_"))).rejects.toMatchObject({
      code: "invite_version",
      message: expect.stringContaining("no longer accepts"),
    });
  });

  it("refuse a re-sealed invite whose mesh id and signing key do not belong together", async () => {
    const a = await invite();
    const b = await invite();
    await expect(decodeInvite(await reseal({ v: 2, ...a, signingKey: b.signingKey }))).rejects.toMatchObject({
      code: "invite_invalid",
      message: expect.stringContaining("was altered"),
    });
  });

  it("refuse a version 1 invite (no join ticket), saying to create a new token", async () => {
    const { ticket: _none, ...v1 } = await invite();
    const payload = new TextEncoder().encode(JSON.stringify({ v: 1, ...v1 }));
    const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", payload)).subarray(0, 4);
    await expect(decodeInvite(`coral1_${toBase64Url(new Uint8Array([...payload, ...sum]))}`)).rejects.toMatchObject({
      code: "invite_version",
      message: expect.stringMatching(/version 1, made before discovery required join tickets.*coral token create/),
    });
  });

  it("carry a ticket that verifies for its mesh only, and refuse one altered or moved to another token", async () => {
    const a = await invite();
    const b = await invite();
    expect(await verifyTicket(inviteTicket(a), a.meshId)).toEqual({ ok: true });
    expect(await verifyTicket(inviteTicket(a), b.meshId)).toMatchObject({ ok: false, reason: expect.stringContaining("mesh id") });
    await expect(decodeInvite(await reseal({ v: 2, ...a, tokenId: "othertoken1" }))).rejects.toMatchObject({
      code: "invite_invalid",
      message: expect.stringContaining("join ticket"),
    });
    await expect(decodeInvite(await reseal({ v: 2, ...a, expiresAt: a.expiresAt + 1 }))).rejects.toMatchObject({
      code: "invite_invalid",
      message: expect.stringContaining("join ticket"),
    });
    await expect(decodeInvite(await reseal({ v: 2, ...a, ticket: b.ticket }))).rejects.toMatchObject({ code: "invite_invalid" });
  });

  it("refuse invalid fields, naming the field", async () => {
    const a = await invite();
    await expect(decodeInvite(await reseal({ v: 2, ...a, discoveryUrl: "ftp://x" }))).rejects.toMatchObject({
      code: "invite_invalid",
      message: expect.stringContaining("discoveryUrl"),
    });
    await expect(decodeInvite(await reseal({ v: 2, ...a, extra: 1 }))).rejects.toMatchObject({ code: "invite_invalid" });
    await expect(decodeInvite(await reseal({ v: 2, ...a, secret: "short" }))).rejects.toMatchObject({
      code: "invite_invalid",
      message: expect.stringContaining("secret"),
    });
    expect(fromBase64Url(a.secret)).toHaveLength(32);
  });
});
