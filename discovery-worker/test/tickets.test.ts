import { env } from "cloudflare:workers";
import { discoveryLimits, joinCreatedSchema, joinListSchema, signTicket, toBase64Url } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { smallOrderPoints } from "../../sdk-proto/test/small-order.js";
import { expectError, joinBody, newMesh, register, sealed, send, snapshot, type TestMesh, ticketFor } from "./helpers.js";

const joinsPath = (meshId: string) => `/v1/meshes/${meshId}/joins`;

async function registeredMesh(): Promise<TestMesh> {
  const mesh = await newMesh();
  expect((await register(mesh)).response.status).toBe(201);
  return mesh;
}

async function pendingOf(meshId: string): Promise<number> {
  const row = await env.DB.prepare("SELECT count(*) AS n FROM joins WHERE mesh_id = ? AND answer IS NULL")
    .bind(meshId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

describe("join tickets", () => {
  it("a join without a ticket is refused, saying to create a new token", async () => {
    const mesh = await registeredMesh();
    const { ticket: _none, ...noTicket } = await joinBody(mesh);
    const body = await expectError(await send("POST", joinsPath(mesh.meshId), { body: noTicket }), 401, "join_ticket_missing");
    expect(body.message).toContain("coral token create");
    expect(await pendingOf(mesh.meshId)).toBe(0);
  });

  it("a forged ticket is refused: another mesh's key, an altered token or expiry, a moved ticket, a small-order key", async () => {
    const mesh = await registeredMesh();
    const other = await registeredMesh();
    const real = await ticketFor(mesh);
    const before = await snapshot(mesh.meshId);
    const identity = smallOrderPoints.canonical[0]?.bytes ?? new Uint8Array(32);
    const forged = [
      // Signed by a key whose fingerprint is another mesh.
      { ...(await ticketFor(other)), tokenId: real.tokenId },
      // The real signature, with the token id or the expiry changed.
      { ...real, tokenId: "attacker0001" },
      { ...real, expiresAt: real.expiresAt + 86_400_000 },
      // Random bytes as the signature.
      { ...real, signature: toBase64Url(crypto.getRandomValues(new Uint8Array(64))) },
      // The identity point as the key with R = identity, S = 0: verifies in plain Ed25519 for any message.
      { ...real, signingKey: toBase64Url(identity), signature: toBase64Url(new Uint8Array([...identity, ...new Uint8Array(32)])) },
    ];
    for (const ticket of forged) {
      const body = await expectError(
        await send("POST", joinsPath(mesh.meshId), { body: await joinBody(mesh, ticket) }),
        403,
        "join_ticket_invalid",
      );
      expect(body.message).toMatch(/not one the mesh's coordinator signed/);
    }
    // A ticket of mesh `other` is refused by mesh `mesh`, though it is valid where it belongs.
    const moved = await ticketFor(other);
    await expectError(await send("POST", joinsPath(mesh.meshId), { body: await joinBody(mesh, moved) }), 403, "join_ticket_invalid");
    expect(await snapshot(mesh.meshId)).toBe(before);
    expect((await send("POST", joinsPath(other.meshId), { body: await joinBody(other, moved) })).response.status).toBe(201);
  });

  it("an expired ticket is refused, even though its signature is good", async () => {
    const mesh = await registeredMesh();
    const ticket = await ticketFor(mesh, { expiresAt: Date.now() - 1000 });
    const body = await expectError(
      await send("POST", joinsPath(mesh.meshId), { body: await joinBody(mesh, ticket) }),
      403,
      "join_ticket_expired",
    );
    expect(body.message).toContain("coral token create");
    expect(await pendingOf(mesh.meshId)).toBe(0);
  });

  it("a flood from one ticket fills only that ticket's slots; a real agent with its own invite still joins", async () => {
    const mesh = await registeredMesh();
    const leaked = await ticketFor(mesh);
    const attacker = "203.0.113.66";
    const limit = discoveryLimits.maxPendingJoinsPerTicket;
    const statuses: number[] = [];
    for (let i = 0; i < limit + 20; i++) {
      const sent = await send("POST", joinsPath(mesh.meshId), { body: await joinBody(mesh, leaked), address: attacker });
      statuses.push(sent.response.status);
      if (sent.response.status === 429) {
        await expectError(sent, 429, "join_ticket_busy");
        expect(sent.response.headers.get("retry-after")).toBe("5");
      }
    }
    expect(statuses.filter((s) => s === 201)).toHaveLength(limit);
    expect(statuses.filter((s) => s === 429)).toHaveLength(20);
    expect(await pendingOf(mesh.meshId)).toBe(limit);

    // A real agent, with the invite of another token, joins at once.
    const agent = await send("POST", joinsPath(mesh.meshId), { body: await joinBody(mesh), address: "198.51.100.23" });
    expect(agent.response.status).toBe(201);
    const { joinId } = joinCreatedSchema.parse(await agent.json());
    const page = joinListSchema.parse(await (await send("GET", joinsPath(mesh.meshId), { sign: mesh.keys })).json());
    expect(page.joins.map((j) => j.joinId)).toContain(joinId);

    // Once the coordinator answers (here: refuses) one of the flood's requests, the ticket has a slot again.
    const flooded = page.joins.find((j) => j.joinId !== joinId)?.joinId ?? "";
    const answer = await send("PUT", `/v1/meshes/${mesh.meshId}/joins/${flooded}/answer`, {
      body: { v: 1, sealed: sealed() },
      sign: mesh.keys,
    });
    expect(answer.response.status).toBe(200);
    expect((await send("POST", joinsPath(mesh.meshId), { body: await joinBody(mesh, leaked), address: attacker })).response.status).toBe(
      201,
    );
    await expectError(
      await send("POST", joinsPath(mesh.meshId), { body: await joinBody(mesh, leaked), address: attacker }),
      429,
      "join_ticket_busy",
    );
  });

  it("a ticket's signature covers the mesh id, so one signed for a mesh is refused by another", async () => {
    const a = await registeredMesh();
    const b = await registeredMesh();
    // b's key signs a ticket for its own mesh; presented with a's key, the fingerprint no longer matches.
    const ticket = {
      ...(await ticketFor(a)),
      signature: await signTicket(b.keys, { tokenId: "sharedtoken1", expiresAt: Date.now() + 60_000 }),
    };
    await expectError(await send("POST", joinsPath(a.meshId), { body: await joinBody(a, ticket) }), 403, "join_ticket_invalid");
  });
});
