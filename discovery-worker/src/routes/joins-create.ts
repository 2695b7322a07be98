import { CoralError, discoveryLimits, discoveryTtls, type JoinCreated, joinRequestSchema, randomBytes, toBase64Url } from "@coral/sdk-proto";
import type { Context } from "hono";
import { countPendingJoins, getLiveMesh, insertJoin, openDb } from "../db/store.js";
import type { AppEnv } from "../env.js";
import { parseJsonBody, readBody, requireJsonContentType } from "../http/body.js";
import { addRowsWritten, meshIdParam } from "../http/params.js";
import { meshNotFound } from "./coordinator-get.js";

/** An agent asks to join. Discovery stores the sealed payload it cannot read. */
export async function createJoin(c: Context<AppEnv>): Promise<Response> {
  const meshId = meshIdParam(c);
  requireJsonContentType(c.req.raw);
  const { value } = parseJsonBody(await readBody(c.req.raw), joinRequestSchema);
  const now = Date.now();
  const db = openDb(c.env.DB);
  if (!(await getLiveMesh(db, meshId, now))) throw meshNotFound(meshId);
  if ((await countPendingJoins(db, meshId, now)) >= discoveryLimits.maxPendingJoinsPerMesh) {
    throw new CoralError(
      "join_queue_full",
      `This mesh already has ${discoveryLimits.maxPendingJoinsPerMesh} join requests waiting; its coordinator may be offline. Try again later.`,
      { headers: { "retry-after": "60" } },
    );
  }
  const created: JoinCreated = {
    joinId: toBase64Url(randomBytes(16)),
    expiresAt: now + discoveryTtls.joinRequestSeconds * 1000,
  };
  addRowsWritten(
    c,
    await insertJoin(db, {
      joinId: created.joinId,
      meshId,
      wireguardKey: value.wireguardKey,
      sealed: value.sealed,
      observedAddress: c.get("clientAddress"),
      createdAt: now,
      expiresAt: created.expiresAt,
    }),
  );
  return c.json(created, 201);
}
