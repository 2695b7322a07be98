import { type LocalDiscovery, startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import { DiscoveryClient, generateSigningKeyPair, meshIdFor } from "@coral-mesh/sdk-proto";
import { generateKeyPair } from "@coral-mesh/wireguard";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiscoveryRegistrar } from "../src/mesh/registrar.js";

describe("keeping the coordinator's record at the discovery Worker", () => {
  let discovery: LocalDiscovery;
  beforeAll(async () => {
    discovery = await startLocalDiscovery({ port: 0 });
  }, 90_000);
  afterAll(async () => {
    await discovery?.stop();
  });

  const registration = (endpoints: string[]) => () => ({
    v: 1 as const,
    wireguardKey: generateKeyPair().publicKey,
    listenPort: 51820,
    endpoints,
  });

  it("registers, and what it registered verifies against the coordinator's key", async () => {
    const signing = await generateSigningKeyPair();
    const log: string[] = [];
    const registrar = new DiscoveryRegistrar({
      discovery: new DiscoveryClient({ url: discovery.url }),
      signing,
      registration: registration(["192.0.2.1:51820"]),
      log: (l) => log.push(l),
    });
    expect(registrar.state.state).toBe("unregistered");
    await registrar.registerOnce();
    expect(registrar.state).toMatchObject({ state: "registered", lastError: null, observedAddress: "127.0.0.1" });
    const record = await new DiscoveryClient({ url: discovery.url }).lookup(await meshIdFor(signing.publicKey), signing.publicKey);
    expect(record.registration.endpoints).toEqual(["192.0.2.1:51820"]);
    expect(log).toEqual(["registered with discovery (seen from 127.0.0.1)"]);
  });

  it("reports failure with the reason, backs off, and recovers", async () => {
    const signing = await generateSigningKeyPair();
    let url = "http://127.0.0.1:9";
    const registrar = new DiscoveryRegistrar({
      discovery: { register: (keys, body) => new DiscoveryClient({ url }).register(keys, body) } as DiscoveryClient,
      signing,
      registration: registration([]),
      intervalMs: 60_000,
    });
    await registrar.registerOnce();
    expect(registrar.state).toMatchObject({ state: "failing", lastError: expect.stringContaining("Cannot reach discovery") });
    expect(registrar.nextDelayMs()).toBe(5_000);
    await registrar.registerOnce();
    expect(registrar.nextDelayMs()).toBe(10_000);
    url = discovery.url;
    await registrar.registerOnce();
    expect(registrar.state.state).toBe("registered");
    expect(registrar.nextDelayMs()).toBe(60_000);
  });
});
