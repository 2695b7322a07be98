import { env } from "cloudflare:workers";
import {
  CoralError,
  DiscoveryClient,
  DiscoveryError,
  discoveryTtls,
  generateSigningKeyPair,
  meshIdFor,
  randomBytes,
  verifyRecord,
} from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { dispatch, freshAddress, registration, ticketFor, wireguardKey } from "./helpers.js";

/** The sdk-proto client, speaking to the real Worker in workerd. */
function client(): DiscoveryClient {
  return new DiscoveryClient({
    url: "https://discovery.test/",
    fetch: async (request) => {
      const headers = new Headers(request.headers);
      headers.set("cf-connecting-ip", freshAddress());
      return (await dispatch(new Request(request, { headers }))).response;
    },
  });
}

describe("DiscoveryClient against the Worker", () => {
  it("runs the whole join sequence", async () => {
    const discovery = client();
    expect((await discovery.health()).apiVersion).toBe("v1");
    const coordinator = await generateSigningKeyPair();
    const meshId = await meshIdFor(coordinator.publicKey);
    const body = registration();
    await discovery.register(coordinator, body);

    const record = await discovery.lookup(meshId, coordinator.publicKey);
    expect(record.registration).toEqual(body);

    const payload = randomBytes(64);
    const { joinId } = await discovery.createJoin(meshId, wireguardKey(), payload, await ticketFor({ keys: coordinator, meshId }));
    expect(await discovery.getAnswer(meshId, joinId)).toBeNull();
    const page = await discovery.listJoins(coordinator);
    expect(page.joins.map((j) => j.joinId)).toEqual([joinId]);
    await discovery.answerJoin(coordinator, joinId, randomBytes(48));
    expect((await discovery.getAnswer(meshId, joinId))?.joinId).toBe(joinId);
    expect((await discovery.listJoins(coordinator, page.cursor)).joins).toEqual([]);
  });

  it("surfaces the Worker's error codes", async () => {
    const discovery = client();
    const coordinator = await generateSigningKeyPair();
    const error = await discovery.listJoins(coordinator).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscoveryError);
    expect((error as DiscoveryError).code).toBe("mesh_not_found");
    expect((error as DiscoveryError).httpStatus).toBe(404);
  });

  it("refuses a record that discovery altered, or one signed by another key", async () => {
    const discovery = client();
    const coordinator = await generateSigningKeyPair();
    const meshId = await meshIdFor(coordinator.publicKey);
    await discovery.register(coordinator, registration({ endpoints: ["192.0.2.1:51820"] }));

    const other = await generateSigningKeyPair();
    await expect(discovery.lookup(meshId, other.publicKey)).rejects.toMatchObject({ code: "mesh_key_mismatch" });

    // A discovery that rewrites the stored body (say, to point agents elsewhere) is caught.
    const evil = JSON.stringify(registration({ endpoints: ["198.51.100.66:51820"] }));
    await env.DB.prepare("UPDATE meshes SET body = ? WHERE mesh_id = ?").bind(evil, meshId).run();
    await expect(discovery.lookup(meshId, coordinator.publicKey)).rejects.toMatchObject({ code: "record_unverified" });
  });

  it("refuses a validly signed record that is older than a record lives", async () => {
    const discovery = client();
    const coordinator = await generateSigningKeyPair();
    const meshId = await meshIdFor(coordinator.publicKey);
    const record = await discovery.register(coordinator, registration());
    const later = record.signed.timestamp + discoveryTtls.coordinatorRecordSeconds * 1000 + 10 * 60_000;
    await expect(verifyRecord(record, coordinator.publicKey, later)).rejects.toBeInstanceOf(CoralError);
    expect((await verifyRecord(record, coordinator.publicKey)).meshId).toBe(meshId);
  });

  it("says clearly when discovery cannot be reached or is not discovery", async () => {
    const down = new DiscoveryClient({ url: "https://discovery.test", fetch: () => Promise.reject(new TypeError("connection refused")) });
    await expect(down.health()).rejects.toMatchObject({
      code: "discovery_unreachable",
      message: expect.stringContaining("connection refused"),
    });
    const wrong = new DiscoveryClient({
      url: "https://discovery.test",
      fetch: async () => new Response("<html>hello</html>", { status: 200 }),
    });
    await expect(wrong.health()).rejects.toMatchObject({ code: "discovery_bad_response" });
  });
});
