import { env } from "cloudflare:workers";
import { discoveryLimits, discoveryTtls, joinAnswerRecordSchema, joinCreatedSchema, joinListSchema } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import {
  createJoin,
  dispatch,
  expectError,
  insertPendingJoins,
  joinBody,
  newMesh,
  register,
  rowsWritten,
  type SendOptions,
  sealed,
  send,
  snapshot,
  type TestMesh,
  ticketFor,
  wireguardKey,
} from "./helpers.js";

const joinsPath = (meshId: string) => `/v1/meshes/${meshId}/joins`;
const answerPath = (meshId: string, joinId: string) => `/v1/meshes/${meshId}/joins/${joinId}/answer`;

async function registeredMesh(): Promise<TestMesh> {
  const mesh = await newMesh();
  const sent = await register(mesh);
  expect(sent.response.status).toBe(201);
  return mesh;
}

async function listJoins(mesh: TestMesh, after?: string, options: SendOptions = {}) {
  const sent = await send("GET", `${joinsPath(mesh.meshId)}${after === undefined ? "" : `?after=${after}`}`, {
    sign: mesh.keys,
    ...options,
  });
  return { sent, body: sent.response.status === 200 ? joinListSchema.parse(await sent.json()) : undefined };
}

describe("the join sequence: happy path", () => {
  it("request → coordinator poll → sealed answer → agent reads it", async () => {
    const mesh = await registeredMesh();
    const agentKey = wireguardKey();
    const payload = sealed(200);
    const created = await send("POST", joinsPath(mesh.meshId), {
      body: { v: 1, wireguardKey: agentKey, sealed: payload, ticket: await ticketFor(mesh) },
      address: "198.51.100.23",
    });
    expect(created.response.status).toBe(201);
    expect(rowsWritten(created)).toBeGreaterThan(0);
    const { joinId, expiresAt } = joinCreatedSchema.parse(await created.json());
    expect(expiresAt - Date.now()).toBeGreaterThan(discoveryTtls.joinRequestSeconds * 1000 - 5_000);

    await expectError(await send("GET", answerPath(mesh.meshId, joinId)), 404, "answer_pending");

    const { body: page } = await listJoins(mesh);
    expect(page?.joins).toHaveLength(1);
    expect(page?.joins[0]).toMatchObject({ joinId, wireguardKey: agentKey, sealed: payload, observedAddress: "198.51.100.23" });
    expect(page?.more).toBe(false);

    const answer = sealed(120);
    const put = await send("PUT", answerPath(mesh.meshId, joinId), { body: { v: 1, sealed: answer }, sign: mesh.keys });
    expect(put.response.status).toBe(200);

    const got = await send("GET", answerPath(mesh.meshId, joinId));
    expect(got.response.status).toBe(200);
    expect(joinAnswerRecordSchema.parse(await got.json())).toMatchObject({ joinId, sealed: answer });

    // Answered requests leave the coordinator's queue.
    expect((await listJoins(mesh)).body?.joins).toHaveLength(0);
  });

  it("pages through pending requests with the cursor", async () => {
    const mesh = await registeredMesh();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await createJoin(mesh));
    const first = (await listJoins(mesh)).body;
    expect(first?.joins.map((j) => j.joinId)).toEqual(ids);
    const empty = (await listJoins(mesh, first?.cursor)).body;
    expect(empty?.joins).toEqual([]);
    expect(empty?.cursor).toBe(first?.cursor);
    const late = await createJoin(mesh);
    expect((await listJoins(mesh, first?.cursor)).body?.joins.map((j) => j.joinId)).toEqual([late]);
  });

  it("says when a page is full and more follow", async () => {
    const mesh = await registeredMesh();
    await insertPendingJoins(mesh.meshId, discoveryLimits.joinPageSize + 3);
    const first = (await listJoins(mesh)).body;
    expect(first?.joins).toHaveLength(discoveryLimits.joinPageSize);
    expect(first?.more).toBe(true);
    const second = (await listJoins(mesh, first?.cursor)).body;
    expect(second?.joins).toHaveLength(3);
    expect(second?.more).toBe(false);
  });

  it("only lists the mesh's own join requests", async () => {
    const a = await registeredMesh();
    const b = await registeredMesh();
    const joinA = await createJoin(a);
    await createJoin(b);
    expect((await listJoins(a)).body?.joins.map((j) => j.joinId)).toEqual([joinA]);
  });

  it("accepts the same answer posted again, as a retry, without writing", async () => {
    const mesh = await registeredMesh();
    const joinId = await createJoin(mesh);
    const answer = { v: 1, sealed: sealed() };
    expect((await send("PUT", answerPath(mesh.meshId, joinId), { body: answer, sign: mesh.keys })).response.status).toBe(200);
    const retry = await send("PUT", answerPath(mesh.meshId, joinId), { body: answer, sign: mesh.keys, timestamp: Date.now() + 1 });
    expect(retry.response.status).toBe(200);
    expect(rowsWritten(retry)).toBe(0);
  });
});

describe("the join sequence: errors", () => {
  it("refuses a join request for a mesh with no live coordinator", async () => {
    const mesh = await newMesh();
    await expectError(await send("POST", joinsPath(mesh.meshId), { body: await joinBody(mesh) }), 404, "mesh_not_found");
  });

  it("refuses malformed join requests and stores nothing", async () => {
    const mesh = await registeredMesh();
    const before = await snapshot(mesh.meshId);
    const bodies: Array<[unknown, number, string]> = [
      ["{", 400, "malformed_json"],
      [{ v: 1, wireguardKey: wireguardKey() }, 400, "invalid_body"],
      [{ v: 1, wireguardKey: wireguardKey(), sealed: "not base64url!" }, 400, "invalid_body"],
      [{ v: 1, wireguardKey: wireguardKey(), sealed: sealed(), extra: 1 }, 400, "invalid_body"],
      [{ v: 1, wireguardKey: wireguardKey(), sealed: "A".repeat(discoveryLimits.maxSealedLength + 4) }, 400, "invalid_body"],
      [{ v: 1, wireguardKey: wireguardKey(), sealed: "A".repeat(discoveryLimits.maxBodyBytes) }, 413, "body_too_large"],
    ];
    for (const [body, status, code] of bodies) await expectError(await send("POST", joinsPath(mesh.meshId), { body }), status, code);
    expect(await snapshot(mesh.meshId)).toBe(before);
  });

  it("caps the pending requests of one mesh", async () => {
    const mesh = await registeredMesh();
    await insertPendingJoins(mesh.meshId, discoveryLimits.maxPendingJoinsPerMesh);
    const sent = await send("POST", joinsPath(mesh.meshId), { body: await joinBody(mesh) });
    await expectError(sent, 429, "join_queue_full");
    expect(sent.response.headers.get("retry-after")).toBe("60");
  });

  it("refuses a bad cursor and bad join ids", async () => {
    const mesh = await registeredMesh();
    for (const after of ["-1", "abc", "01", "1e3", "9".repeat(20)])
      await expectError((await listJoins(mesh, after)).sent, 400, "invalid_cursor");
    await expectError(await send("GET", answerPath(mesh.meshId, "short")), 400, "invalid_join_id");
    await expectError(await send("GET", answerPath(mesh.meshId, "A".repeat(22))), 404, "join_not_found");
  });

  it("hides expired join requests and their answers", async () => {
    const mesh = await registeredMesh();
    const joinId = await createJoin(mesh);
    await env.DB.prepare("UPDATE joins SET expires_at = ? WHERE join_id = ?")
      .bind(Date.now() - 1, joinId)
      .run();
    expect((await listJoins(mesh)).body?.joins).toEqual([]);
    await expectError(await send("GET", answerPath(mesh.meshId, joinId)), 404, "join_not_found");
    await expectError(
      await send("PUT", answerPath(mesh.meshId, joinId), { body: { v: 1, sealed: sealed() }, sign: mesh.keys }),
      404,
      "join_not_found",
    );
  });

  it("tells a coordinator whose record is gone to register again", async () => {
    const mesh = await newMesh();
    await expectError((await listJoins(mesh)).sent, 404, "mesh_not_found");
  });
});

describe("the join sequence: security", () => {
  it("only the mesh's own key may list join requests", async () => {
    const mesh = await registeredMesh();
    await createJoin(mesh);
    const attacker = await newMesh();
    await expectError(await send("GET", joinsPath(mesh.meshId), { sign: attacker.keys }), 403, "mesh_key_mismatch");
    await expectError(await send("GET", joinsPath(mesh.meshId)), 401, "signature_missing");
  });

  it("a signed list request cannot be replayed or have its cursor changed", async () => {
    const mesh = await registeredMesh();
    const { sent } = await listJoins(mesh, "0");
    await expectError(await dispatch(sent.request), 401, "signature_replayed");
    const moved = new Request(sent.request.url.replace("after=0", "after=1"), { headers: sent.request.headers });
    await expectError(await dispatch(moved), 401, "signature_invalid");
  });

  it("only the mesh's own key may answer, and never another mesh's join", async () => {
    const mesh = await registeredMesh();
    const other = await registeredMesh();
    const joinId = await createJoin(mesh);
    const before = await snapshot(mesh.meshId);
    await expectError(
      await send("PUT", answerPath(mesh.meshId, joinId), { body: { v: 1, sealed: sealed() }, sign: other.keys }),
      403,
      "mesh_key_mismatch",
    );
    // Signed correctly by the other mesh, but for its own path: the join is not there.
    await expectError(
      await send("PUT", answerPath(other.meshId, joinId), { body: { v: 1, sealed: sealed() }, sign: other.keys }),
      404,
      "join_not_found",
    );
    await expectError(await send("GET", answerPath(other.meshId, joinId)), 404, "join_not_found");
    expect(await snapshot(mesh.meshId)).toBe(before);
  });

  it("an answer cannot be replaced, and an old answer request cannot be replayed", async () => {
    const mesh = await registeredMesh();
    const joinId = await createJoin(mesh);
    const first = await send("PUT", answerPath(mesh.meshId, joinId), { body: { v: 1, sealed: sealed() }, sign: mesh.keys });
    expect(first.response.status).toBe(200);
    const before = await snapshot(mesh.meshId);
    await expectError(
      await send("PUT", answerPath(mesh.meshId, joinId), { body: { v: 1, sealed: sealed() }, sign: mesh.keys }),
      409,
      "answer_exists",
    );
    await expectError(await dispatch(first.request), 401, "signature_replayed");
    expect(await snapshot(mesh.meshId)).toBe(before);
  });

  it("join ids are unguessable: 128 random bits, never repeated", async () => {
    const mesh = await registeredMesh();
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) ids.add(await createJoin(mesh));
    expect(ids.size).toBe(50);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});
