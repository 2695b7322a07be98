import { env } from "cloudflare:workers";
import {
  canonicalRequest,
  coordinatorRecordSchema,
  discoveryLimits,
  discoveryTtls,
  fromBase64Url,
  meshIdFor,
  toBase64Url,
  verifyCanonical,
} from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { dispatch, expectError, newMesh, register, registration, rowsWritten, send, snapshot } from "./helpers.js";

const path = (meshId: string) => `/v1/meshes/${meshId}/coordinator`;

describe("PUT /v1/meshes/{meshId}/coordinator: happy path", () => {
  it("creates a record that anyone can read and re-verify against the pinned key", async () => {
    const mesh = await newMesh();
    const body = registration({ name: "home lab" });
    const put = await register(mesh, body, { address: "203.0.113.7" });
    expect(put.response.status).toBe(201);
    expect(rowsWritten(put)).toBeGreaterThan(0);

    const get = await send("GET", path(mesh.meshId));
    expect(get.response.status).toBe(200);
    const record = coordinatorRecordSchema.parse(await get.json());
    expect(record.registration).toEqual(body);
    expect(record.observedAddress).toBe("203.0.113.7");
    expect(record.expiresAt - record.updatedAt).toBe(discoveryTtls.coordinatorRecordSeconds * 1000);

    // What an agent does: rebuild the canonical request and verify with the key from its invite.
    const canonical = await canonicalRequest(record.signed, record.signed.timestamp, record.signed.nonce);
    const signature = fromBase64Url(record.signed.signature);
    expect(signature).not.toBeNull();
    expect(await verifyCanonical(mesh.keys.publicKey, canonical, signature as Uint8Array)).toBe(true);
    const other = await newMesh();
    expect(await verifyCanonical(other.keys.publicKey, canonical, signature as Uint8Array)).toBe(false);
  });

  it("answers an unchanged refresh without writing to D1", async () => {
    const mesh = await newMesh();
    const body = registration();
    const first = await register(mesh, body, { address: "203.0.113.8" });
    expect(first.response.status).toBe(201);
    const before = await snapshot(mesh.meshId);
    // Same content with keys in another order is still "unchanged".
    const reordered = { endpoints: body.endpoints, listenPort: body.listenPort, wireguardKey: body.wireguardKey, v: 1 as const };
    const refresh = await register(mesh, reordered, { address: "203.0.113.8" });
    expect(refresh.response.status).toBe(200);
    expect(rowsWritten(refresh)).toBe(0);
    expect(await snapshot(mesh.meshId)).toBe(before);
  });

  it("rewrites an unchanged record once it nears expiry", async () => {
    const mesh = await newMesh();
    const body = registration();
    await register(mesh, body, { address: "203.0.113.9" });
    const soon = Date.now() + (discoveryTtls.coordinatorRewriteBelowSeconds * 1000) / 2;
    await env.DB.prepare("UPDATE meshes SET expires_at = ? WHERE mesh_id = ?").bind(soon, mesh.meshId).run();
    const refresh = await register(mesh, body, { address: "203.0.113.9" });
    expect(refresh.response.status).toBe(200);
    expect(rowsWritten(refresh)).toBeGreaterThan(0);
    const record = coordinatorRecordSchema.parse(await refresh.json());
    expect(record.expiresAt).toBeGreaterThan(soon);
  });

  it("writes when the endpoints or the observed address change", async () => {
    const mesh = await newMesh();
    const body = registration();
    await register(mesh, body, { address: "203.0.113.10" });
    const moved = await register(mesh, body, { address: "203.0.113.11" });
    expect(rowsWritten(moved)).toBeGreaterThan(0);
    expect((await moved.json()).observedAddress).toBe("203.0.113.11");
    const changed = await register(mesh, { ...body, endpoints: ["198.51.100.4:51820"] }, { address: "203.0.113.11" });
    expect(rowsWritten(changed)).toBeGreaterThan(0);
    const record = coordinatorRecordSchema.parse(await (await send("GET", path(mesh.meshId))).json());
    expect(record.registration.endpoints).toEqual(["198.51.100.4:51820"]);
  });

  it("accepts IPv4, bracketed IPv6 and DNS-name endpoints", async () => {
    const mesh = await newMesh();
    const endpoints = ["192.0.2.1:1", "[2001:db8::1]:65535", "[::ffff:192.0.2.1]:51820", "coord.example.net:51820"];
    expect((await register(mesh, registration({ endpoints }))).response.status).toBe(201);
  });
});

describe("PUT /v1/meshes/{meshId}/coordinator: bad input", () => {
  const cases: Array<[string, (meshId: string) => unknown, number, string]> = [
    ["malformed JSON", () => "{not json", 400, "malformed_json"],
    ["a JSON array", () => [], 400, "invalid_body"],
    ["an unknown field", () => ({ ...registration(), admin: true }), 400, "invalid_body"],
    ["a wrong version", () => ({ ...registration(), v: 2 }), 400, "invalid_body"],
    ["a port as a string", () => ({ ...registration(), listenPort: "51820" }), 400, "invalid_body"],
    ["a port out of range", () => ({ ...registration(), listenPort: 70000 }), 400, "invalid_body"],
    ["a short WireGuard key", () => ({ ...registration(), wireguardKey: "AAAA" }), 400, "invalid_body"],
    ["an endpoint without a port", () => registration({ endpoints: ["192.0.2.1"] }), 400, "invalid_body"],
    ["an unbracketed IPv6 endpoint", () => registration({ endpoints: ["2001:db8::1:51820"] }), 400, "invalid_body"],
    ["a bad IPv4 endpoint", () => registration({ endpoints: ["300.1.1.1:51820"] }), 400, "invalid_body"],
    [
      "too many endpoints",
      () => registration({ endpoints: Array.from({ length: 17 }, (_, i) => `192.0.2.${i}:51820`) }),
      400,
      "invalid_body",
    ],
    ["a control character in the name", () => registration({ name: "bad\nname" }), 400, "invalid_body"],
    ["an oversized body", () => ({ ...registration(), name: "x".repeat(discoveryLimits.maxBodyBytes) }), 413, "body_too_large"],
  ];

  for (const [label, makeBody, status, code] of cases) {
    it(`refuses ${label} with ${status} ${code} and stores nothing`, async () => {
      const mesh = await newMesh();
      const sent = await register(mesh, makeBody(mesh.meshId) as never);
      const error = await expectError(sent, status, code);
      if (code === "invalid_body") expect(error.details).toHaveProperty("issues");
      expect(await snapshot(mesh.meshId)).toBe(JSON.stringify({ mesh: [], joins: [] }));
    });
  }

  it("refuses a body that is not JSON by content type", async () => {
    const mesh = await newMesh();
    const sent = await register(mesh, registration(), { headers: { "content-type": "text/plain" } });
    await expectError(sent, 415, "unsupported_media_type");
  });

  it("refuses a malformed mesh id", async () => {
    const mesh = await newMesh();
    const sent = await send("PUT", path("NOT-A-MESH-ID"), { body: registration(), sign: mesh.keys });
    await expectError(sent, 400, "invalid_mesh_id");
    await expectError(await send("GET", path("short")), 400, "invalid_mesh_id");
  });

  it("answers 404 for a mesh that never registered", async () => {
    const mesh = await newMesh();
    await expectError(await send("GET", path(mesh.meshId)), 404, "mesh_not_found");
  });

  it("answers 404 once the record has expired", async () => {
    const mesh = await newMesh();
    await register(mesh);
    await env.DB.prepare("UPDATE meshes SET expires_at = ? WHERE mesh_id = ?")
      .bind(Date.now() - 1, mesh.meshId)
      .run();
    await expectError(await send("GET", path(mesh.meshId)), 404, "mesh_not_found");
  });
});

describe("PUT /v1/meshes/{meshId}/coordinator: security", () => {
  it("refuses a second key claiming an existing mesh id, and keeps the record", async () => {
    const victim = await newMesh();
    await register(victim);
    const before = await snapshot(victim.meshId);
    const attacker = await newMesh();
    const sent = await send("PUT", path(victim.meshId), {
      body: registration({ endpoints: ["198.51.100.66:51820"] }),
      sign: attacker.keys,
    });
    await expectError(sent, 403, "mesh_key_mismatch");
    expect(await snapshot(victim.meshId)).toBe(before);
  });

  it("refuses an unsigned request and a partly signed one", async () => {
    const mesh = await newMesh();
    await expectError(await send("PUT", path(mesh.meshId), { body: registration() }), 401, "signature_missing");
    await expectError(
      await send("PUT", path(mesh.meshId), { body: registration(), headers: { "coral-key": "x" } }),
      401,
      "signature_malformed",
    );
  });

  it("refuses a body changed after signing", async () => {
    const mesh = await newMesh();
    const signed = await register(mesh, registration());
    const headers = Object.fromEntries(signed.request.headers);
    const tampered = new Request(signed.request.url, {
      method: "PUT",
      headers: { ...headers, "coral-nonce": "bm9uY2Utbm9uY2Utbm9uY2U" },
      body: JSON.stringify(registration({ endpoints: ["198.51.100.66:51820"] })),
    });
    const before = await snapshot(mesh.meshId);
    await expectError(await dispatch(tampered), 401, "signature_invalid");
    expect(await snapshot(mesh.meshId)).toBe(before);
  });

  it("refuses a signature made for another path", async () => {
    const mesh = await newMesh();
    const elsewhere = await send("PUT", path(mesh.meshId), { body: registration(), sign: mesh.keys });
    const moved = new Request(`https://discovery.test/v1/meshes/${mesh.meshId}/joins`, {
      method: "GET",
      headers: Object.fromEntries(elsewhere.request.headers),
    });
    await expectError(await dispatch(moved), 401, "signature_invalid");
  });

  it("refuses timestamps outside the window, in both directions", async () => {
    const mesh = await newMesh();
    const window = discoveryLimits.signatureWindowMs;
    const stale = await register(mesh, registration(), { timestamp: Date.now() - window - 5_000 });
    const body = await expectError(stale, 401, "signature_stale");
    expect(body.details).toHaveProperty("serverTime");
    await expectError(await register(mesh, registration(), { timestamp: Date.now() + window + 5_000 }), 401, "signature_stale");
    expect(await snapshot(mesh.meshId)).toBe(JSON.stringify({ mesh: [], joins: [] }));
  });

  it("refuses an exact replay of a request that wrote", async () => {
    const mesh = await newMesh();
    const first = await register(mesh, registration());
    expect(first.response.status).toBe(201);
    await expectError(await dispatch(first.request), 401, "signature_replayed");
  });

  it("refuses an exact replay of a no-op refresh", async () => {
    const mesh = await newMesh();
    const body = registration();
    await register(mesh, body, { address: "203.0.113.20" });
    const refresh = await register(mesh, body, { address: "203.0.113.20" });
    expect(refresh.response.status).toBe(200);
    await expectError(await dispatch(refresh.request), 401, "signature_replayed");
  });

  it("refuses an older registration after a newer one, so a record cannot be rolled back", async () => {
    const mesh = await newMesh();
    const now = Date.now();
    await register(mesh, registration({ endpoints: ["192.0.2.50:51820"] }), { timestamp: now });
    const older = await register(mesh, registration({ endpoints: ["192.0.2.49:51820"] }), { timestamp: now - 1_000 });
    await expectError(older, 401, "signature_replayed");
    const record = coordinatorRecordSchema.parse(await (await send("GET", path(mesh.meshId))).json());
    expect(record.registration.endpoints).toEqual(["192.0.2.50:51820"]);
  });

  it("refuses an all-zero signature", async () => {
    const mesh = await newMesh();
    const sent = await register(mesh, registration(), { headers: { "coral-signature": "A".repeat(86) } });
    await expectError(sent, 401, "signature_invalid");
  });

  it("refuses a key that is not a valid curve point with 401, not a crash", async () => {
    // y = 2 is not on edwards25519; its mesh id is still well formed.
    const junk = new Uint8Array(32);
    junk[0] = 2;
    const meshId = await meshIdFor(junk);
    const mesh = await newMesh();
    const sent = await send("PUT", path(meshId), { body: registration(), sign: mesh.keys, headers: { "coral-key": toBase64Url(junk) } });
    await expectError(sent, 401, "signature_invalid");
  });
});
