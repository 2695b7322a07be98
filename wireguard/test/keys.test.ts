import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { generateKeyPair, parseDump, publicKeyOf } from "../src/index.js";

describe("WireGuard keys", () => {
  it("derive the public key from the private key, as wg does", () => {
    const pair = generateKeyPair();
    expect(pair.privateKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(publicKeyOf(pair.privateKey)).toBe(pair.publicKey);
    let wgAnswer: string | undefined;
    try {
      wgAnswer = execFileSync("wg", ["pubkey"], { input: `${pair.privateKey}\n` })
        .toString()
        .trim();
    } catch {
      // wg is not installed here; the lab suite covers it where it is.
    }
    if (wgAnswer !== undefined) expect(wgAnswer).toBe(pair.publicKey);
  });

  it("refuse a private key of the wrong length", () => {
    expect(() => publicKeyOf("AAAA")).toThrow(/32 bytes/);
  });
});

describe("wg show dump", () => {
  it("parses the interface line and each peer, with (none) and 0 as absent", () => {
    const dump = [
      "cHJpdmF0ZQ==\tcHVibGlj\t51820\toff",
      "cGVlcjE=\t(none)\t198.51.100.7:40123\t100.64.0.2/32\t1764400000\t1234\t5678\t25",
      "cGVlcjI=\t(none)\t(none)\t100.64.0.3/32,100.64.1.0/24\t0\t0\t0\toff",
    ].join("\n");
    expect(parseDump(dump)).toEqual({
      publicKey: "cHVibGlj",
      listenPort: 51820,
      peers: [
        {
          publicKey: "cGVlcjE=",
          endpoint: "198.51.100.7:40123",
          allowedIps: ["100.64.0.2/32"],
          latestHandshake: 1764400000000,
          rxBytes: 1234,
          txBytes: 5678,
          persistentKeepalive: 25,
        },
        {
          publicKey: "cGVlcjI=",
          endpoint: null,
          allowedIps: ["100.64.0.3/32", "100.64.1.0/24"],
          latestHandshake: null,
          rxBytes: 0,
          txBytes: 0,
          persistentKeepalive: null,
        },
      ],
    });
  });
});
