import { describe, expect, it } from "vitest";
import { expectError, joinBody, newMesh, register, registration, send, snapshot, wireguardKey } from "./helpers.js";

describe("JSON bodies with a key twice", () => {
  it("a signed registration with a key twice is refused and stores nothing, however the key is spelled", async () => {
    const mesh = await newMesh();
    const path = `/v1/meshes/${mesh.meshId}/coordinator`;
    const key = wireguardKey();
    // JSON.parse would keep the second listenPort; a verifier in another language might keep the first.
    const bodies = [
      `{"v":1,"wireguardKey":"${key}","listenPort":51820,"endpoints":[],"listenPort":1}`,
      `{"v":1,"wireguardKey":"${key}","listenPort":51820,"endpoints":[],"\\u006cistenPort":1}`,
      `{"v":1,"v":1,"wireguardKey":"${key}","listenPort":51820,"endpoints":[]}`,
    ];
    for (const body of bodies) {
      const refused = await expectError(await send("PUT", path, { body, sign: mesh.keys }), 400, "duplicate_json_key");
      expect(refused.message).toMatch(/twice/);
    }
    expect(await snapshot(mesh.meshId)).toBe(JSON.stringify({ mesh: [], joins: [] }));
    // The same body without the duplicate is accepted, and equal keys in different objects are fine.
    expect((await register(mesh, registration())).response.status).toBe(201);
  });

  it("a join request with a key twice is refused", async () => {
    const mesh = await newMesh();
    await register(mesh);
    const body = JSON.stringify(await joinBody(mesh)).replace(/^\{/, `{"sealed":"AAAA",`);
    await expectError(await send("POST", `/v1/meshes/${mesh.meshId}/joins`, { body }), 400, "duplicate_json_key");
  });
});
