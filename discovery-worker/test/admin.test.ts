import { env } from "cloudflare:workers";
import { adminStatsSchema } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, createJoin, expectError, newMesh, register, sealed, send } from "./helpers.js";

async function stats() {
  const sent = await send("GET", "/v1/admin/stats", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(sent.response.status).toBe(200);
  return adminStatsSchema.parse(await sent.json());
}

describe("GET /v1/admin/stats", () => {
  it("refuses a missing or wrong token", async () => {
    const missing = await send("GET", "/v1/admin/stats");
    await expectError(missing, 401, "admin_unauthorized");
    expect(missing.response.headers.get("www-authenticate")).toMatch(/^Bearer/);
    await expectError(
      await send("GET", "/v1/admin/stats", { headers: { authorization: `Bearer ${ADMIN_TOKEN}x` } }),
      401,
      "admin_unauthorized",
    );
    await expectError(await send("GET", "/v1/admin/stats", { headers: { authorization: ADMIN_TOKEN } }), 401, "admin_unauthorized");
  });

  it("takes the bearer scheme in any case, as HTTP says", async () => {
    for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
      const sent = await send("GET", "/v1/admin/stats", { headers: { authorization: `${scheme} ${ADMIN_TOKEN}` } });
      expect(sent.response.status, scheme).toBe(200);
    }
    await expectError(
      await send("GET", "/v1/admin/stats", { headers: { authorization: `Basic ${ADMIN_TOKEN}` } }),
      401,
      "admin_unauthorized",
    );
  });

  it("counts meshes, live records, pending and answered joins", async () => {
    const before = await stats();
    const live = await newMesh();
    await register(live);
    const expired = await newMesh();
    await register(expired);
    await env.DB.prepare("UPDATE meshes SET expires_at = ? WHERE mesh_id = ?")
      .bind(Date.now() - 1, expired.meshId)
      .run();
    await createJoin(live);
    const answered = await createJoin(live);
    const put = await send("PUT", `/v1/meshes/${live.meshId}/joins/${answered}/answer`, {
      body: { v: 1, sealed: sealed() },
      sign: live.keys,
    });
    expect(put.response.status).toBe(200);

    const after = await stats();
    expect(after.meshes - before.meshes).toBe(2);
    expect(after.liveRecords - before.liveRecords).toBe(1);
    expect(after.pendingJoins - before.pendingJoins).toBe(1);
    expect(after.answeredJoins - before.answeredJoins).toBe(1);
  });

  it("counts refusals by code", async () => {
    const before = await stats();
    const mesh = await newMesh();
    await send("GET", `/v1/meshes/${mesh.meshId}/joins`);
    await send("GET", `/v1/meshes/${mesh.meshId}/joins`);
    await send("GET", "/v1/meshes/bad/coordinator");
    const after = await stats();
    const delta = (code: string) => (after.refusals[code] ?? 0) - (before.refusals[code] ?? 0);
    expect(delta("signature_missing")).toBe(2);
    expect(delta("invalid_mesh_id")).toBe(1);
  });
});
