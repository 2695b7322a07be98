import {
  CoralError,
  discoveryLimits,
  discoveryTtls,
  type JoinCreated,
  joinRequestSchema,
  randomBytes,
  toBase64Url,
} from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import { insertJoin, openDb } from "../db/store.js";
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
  const created: JoinCreated = {
    joinId: toBase64Url(randomBytes(16)),
    expiresAt: now + discoveryTtls.joinRequestSeconds * 1000,
  };
  const join = {
    joinId: created.joinId,
    meshId,
    wireguardKey: value.wireguardKey,
    sealed: value.sealed,
    observedAddress: c.get("clientAddress"),
    createdAt: now,
    expiresAt: created.expiresAt,
  };
  const outcome = await insertJoin(openDb(c.env.DB), join, discoveryLimits.maxPendingJoinsPerMesh);
  if (outcome.kind === "mesh_not_found") throw meshNotFound(meshId);
  if (outcome.kind === "queue_full") {
    throw new CoralError(
      "join_queue_full",
      `This mesh already has ${discoveryLimits.maxPendingJoinsPerMesh} join requests waiting; its coordinator may be offline. Try again later.`,
      { headers: { "retry-after": "60" } },
    );
  }
  addRowsWritten(c, outcome.rowsWritten);
  return c.json(created, 201);
}
