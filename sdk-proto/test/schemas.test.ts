import { describe, expect, it } from "vitest";
import { coordinatorRegistrationSchema, parseEndpoint, wireguardKeySchema } from "../src/index.js";

describe("endpoint candidates", () => {
  it("accept IPv4, bracketed IPv6 and DNS names with a port", () => {
    expect(parseEndpoint("192.0.2.1:51820")).toEqual({ host: "192.0.2.1", port: 51820 });
    expect(parseEndpoint("[2001:db8::1]:1")).toEqual({ host: "2001:db8::1", port: 1 });
    expect(parseEndpoint("[::]:65535")).toEqual({ host: "::", port: 65535 });
    expect(parseEndpoint("[::ffff:192.0.2.1]:443")).toEqual({ host: "::ffff:192.0.2.1", port: 443 });
    expect(parseEndpoint("[1:2:3:4:5:6:7:8]:9")).toEqual({ host: "1:2:3:4:5:6:7:8", port: 9 });
    expect(parseEndpoint("coord-1.example.net:51820")).toEqual({ host: "coord-1.example.net", port: 51820 });
  });

  it("refuse everything else", () => {
    for (const bad of [
      "192.0.2.1",
      "192.0.2.1:0",
      "192.0.2.1:65536",
      "192.0.2.1:080",
      "256.0.0.1:1",
      "1.2.3:1",
      "2001:db8::1:51820",
      "[2001:db8::1::2]:1",
      "[1:2:3:4:5:6:7:8:9]:1",
      "[1:2:3:4:5:6:7]:1",
      "[gggg::1]:1",
      "-bad.example:1",
      "exa mple.net:1",
      ":51820",
      "host:port",
    ]) {
      expect(parseEndpoint(bad), bad).toBeNull();
    }
  });
});

describe("schemas", () => {
  it("take WireGuard keys only as 32 bytes of padded base64", () => {
    expect(wireguardKeySchema.safeParse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").success).toBe(true);
    expect(wireguardKeySchema.safeParse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").success).toBe(false);
    expect(wireguardKeySchema.safeParse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=").success).toBe(false);
  });

  it("refuse unknown fields in a registration", () => {
    const ok = { v: 1, wireguardKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", listenPort: 51820, endpoints: [] };
    expect(coordinatorRegistrationSchema.safeParse(ok).success).toBe(true);
    const result = coordinatorRegistrationSchema.safeParse({ ...ok, extra: true });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.code).toBe("unrecognized_keys");
  });
});
