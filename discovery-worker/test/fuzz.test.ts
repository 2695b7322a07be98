import { generateSigningKeyPair, meshIdFor, type SigningKeyPair, signRequest } from "@coral-mesh/sdk-proto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createJoin, dispatch, freshAddress, newMesh, register, registration, snapshot, type TestMesh } from "./helpers.js";

// Printable ASCII only: anything else cannot be put in a header by a client at all.
const headerValue = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 120 });

const jsonish = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.constantFrom('{"v":1}', "null", "[]", "{", '{"v":1,"wireguardKey":"x","sealed":"y"}', '{"__proto__":{"x":1}}'),
  fc.string({ maxLength: 300 }),
  fc
    .record({
      v: fc.constantFrom(1, 2, "1"),
      wireguardKey: fc.string(),
      sealed: fc.string(),
      endpoints: fc.array(fc.string(), { maxLength: 20 }),
      listenPort: fc.integer(),
    })
    .map((o) => JSON.stringify(o)),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => String.fromCharCode(...bytes)),
);

describe("arbitrary requests", () => {
  let bystander: TestMesh;
  let attacker: SigningKeyPair;
  let attackerMesh: string;
  let bystanderJoin: string;
  let before: string;

  beforeAll(async () => {
    bystander = await newMesh();
    await register(bystander);
    bystanderJoin = await createJoin(bystander);
    attacker = await generateSigningKeyPair();
    attackerMesh = await meshIdFor(attacker.publicKey);
    before = await snapshot(bystander.meshId);
  });

  it("never answer 5xx and never change another mesh's data", async () => {
    const meshSegment = fc.oneof(
      fc.constant("BYSTANDER"),
      fc.constant("ATTACKER"),
      fc.stringMatching(/^[a-z2-7]{32}$/),
      fc.string({ maxLength: 40 }).map(encodeURIComponent),
    );
    const joinSegment = fc.oneof(
      fc.constant("BYSTANDER_JOIN"),
      fc.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      fc.string({ maxLength: 30 }).map(encodeURIComponent),
    );
    const path = fc.oneof(
      fc.constant("/v1/health"),
      fc.constant("/v1/admin/stats"),
      meshSegment.map((m) => `/v1/meshes/${m}/coordinator`),
      fc
        .tuple(meshSegment, fc.option(fc.string({ maxLength: 12 }).map(encodeURIComponent)))
        .map(([m, after]) => `/v1/meshes/${m}/joins${after === null ? "" : `?after=${after}`}`),
      fc.tuple(meshSegment, joinSegment).map(([m, j]) => `/v1/meshes/${m}/joins/${j}/answer`),
      fc.webPath().map((p) => `/v1${p}`),
    );
    const request = fc.record({
      method: fc.oneof(
        { arbitrary: fc.constantFrom("GET", "PUT", "POST"), weight: 6 },
        { arbitrary: fc.constantFrom("DELETE", "PATCH", "OPTIONS", "HEAD"), weight: 1 },
      ),
      path,
      body: fc.option(jsonish),
      contentType: fc.option(fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "APPLICATION/JSON")),
      signAs: fc.constantFrom("none", "attacker", "garbage"),
      headers: fc.dictionary(
        fc.constantFrom("coral-key", "coral-timestamp", "coral-nonce", "coral-signature", "authorization", "content-length"),
        headerValue,
        { maxKeys: 3 },
      ),
    });

    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const resolvedPath = r.path
          .replaceAll("BYSTANDER_JOIN", bystanderJoin)
          .replaceAll("BYSTANDER", bystander.meshId)
          .replaceAll("ATTACKER", attackerMesh);
        const hasBody = r.body !== null && r.method !== "GET" && r.method !== "HEAD";
        const body = hasBody ? (r.body as string) : undefined;
        const headers: Record<string, string> = { "cf-connecting-ip": freshAddress() };
        if (r.contentType) headers["content-type"] = r.contentType;
        if (r.signAs === "attacker")
          Object.assign(headers, await signRequest(attacker, { method: r.method, path: resolvedPath, body: body ?? "" }));
        if (r.signAs === "garbage") Object.assign(headers, r.headers);
        let built: Request;
        try {
          built = new Request(`https://discovery.test${resolvedPath}`, {
            method: r.method,
            headers,
            ...(body !== undefined ? { body } : {}),
          });
        } catch {
          return; // Not a request any client could send (e.g. an invalid content-length).
        }
        const sent = await dispatch(built);
        expect(sent.response.status, `${r.method} ${resolvedPath}`).toBeLessThan(500);
        if (r.method !== "HEAD") {
          const error = sent.response.status >= 400 ? await sent.json() : null;
          if (error) expect(error).toHaveProperty("code");
        }
      }),
      { numRuns: 600 },
    );
    expect(await snapshot(bystander.meshId)).toBe(before);
  }, 120_000);

  it("still serves the bystander mesh after the storm", async () => {
    const refresh = await register(bystander, registration());
    expect(refresh.response.status).toBe(200);
  });
});
