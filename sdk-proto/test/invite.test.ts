import { describe, expect, it } from "vitest";
import { decodeInvite, encodeInvite, fromBase64Url, generateSigningKeyPair, type Invite, meshIdFor, toBase64Url } from "../src/index.js";

async function invite(): Promise<Invite> {
  const keys = await generateSigningKeyPair();
  return {
    discoveryUrl: "https://coral-discovery.example.workers.dev",
    meshId: await meshIdFor(keys.publicKey),
    signingKey: toBase64Url(keys.publicKey),
    tokenId: "tok1a2b3c4d",
    secret: toBase64Url(new Uint8Array(32).fill(7)),
    expiresAt: 1_764_400_000_000,
  };
}

/** Re-encodes an invite body with a correct checksum, as a deliberate tamperer would. */
async function reseal(fields: Record<string, unknown>): Promise<string> {
  const payload = new TextEncoder().encode(JSON.stringify(fields));
  const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", payload)).subarray(0, 4);
  return `coral1_${toBase64Url(new Uint8Array([...payload, ...sum]))}`;
}

describe("invites", () => {
  it("round-trip, as one token of URL-safe characters", async () => {
    const original = await invite();
    const text = await encodeInvite(original);
    expect(text).toMatch(/^coral1_[A-Za-z0-9_-]+$/);
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
      message: expect.stringContaining('start with "coral1_"'),
    });
    await expect(decodeInvite(text.replace(/^coral1_/, "coral2_"))).rejects.toMatchObject({
      code: "invite_version",
      message: expect.stringContaining("upgrade coral-agent"),
    });
    await expect(decodeInvite(text.replace(/^coral1_/, "coral0_"))).rejects.toMatchObject({
      code: "invite_version",
      message: expect.stringContaining("no longer accepts"),
    });
  });

  it("refuse a re-sealed invite whose mesh id and signing key do not belong together", async () => {
    const a = await invite();
    const b = await invite();
    await expect(decodeInvite(await reseal({ v: 1, ...a, signingKey: b.signingKey }))).rejects.toMatchObject({
      code: "invite_invalid",
      message: expect.stringContaining("was altered"),
    });
  });

  it("refuse invalid fields, naming the field", async () => {
    const a = await invite();
    await expect(decodeInvite(await reseal({ v: 1, ...a, discoveryUrl: "ftp://x" }))).rejects.toMatchObject({
      code: "invite_invalid",
      message: expect.stringContaining("discoveryUrl"),
    });
    await expect(decodeInvite(await reseal({ v: 1, ...a, extra: 1 }))).rejects.toMatchObject({ code: "invite_invalid" });
    await expect(decodeInvite(await reseal({ v: 1, ...a, secret: "short" }))).rejects.toMatchObject({
      code: "invite_invalid",
      message: expect.stringContaining("secret"),
    });
    expect(fromBase64Url(a.secret)).toHaveLength(32);
  });
});
