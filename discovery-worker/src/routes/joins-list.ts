import { discoveryLimits, type JoinList } from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import { verifySignedRequest } from "../auth/signature.js";
import { listPendingJoins, openDb } from "../db/store.js";
import type { AppEnv } from "../env.js";
import { cursorQuery, meshIdParam } from "../http/params.js";
import { toPendingJoin } from "../http/records.js";
import { meshNotFound } from "./coordinator-get.js";

const EMPTY = new Uint8Array();

/** The coordinator's poll: unanswered join requests newer than its cursor. */
export async function listJoins(c: Context<AppEnv>): Promise<Response> {
  const meshId = meshIdParam(c);
  const now = Date.now();
  await verifySignedRequest(c.req.raw, meshId, EMPTY, now);
  const after = cursorQuery(c);
  const pageSize = discoveryLimits.joinPageSize;
  const { meshLive, joins: rows } = await listPendingJoins(openDb(c.env.DB), meshId, after, now, pageSize + 1);
  if (!meshLive) throw meshNotFound(meshId);
  const page = rows.slice(0, pageSize);
  const body: JoinList = {
    joins: page.map(toPendingJoin),
    cursor: String(page.at(-1)?.seq ?? after),
    more: rows.length > pageSize,
  };
  return c.json(body);
}
