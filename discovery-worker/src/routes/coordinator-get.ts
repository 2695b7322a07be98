import { CoralError } from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import { getLiveMesh, openDb } from "../db/store.js";
import type { AppEnv } from "../env.js";
import { meshIdParam } from "../http/params.js";
import { toCoordinatorRecord } from "../http/records.js";

/** Anyone may read a record: it carries its signature, and agents verify it against their pinned key. */
export async function getCoordinator(c: Context<AppEnv>): Promise<Response> {
  const meshId = meshIdParam(c);
  const row = await getLiveMesh(openDb(c.env.DB), meshId, Date.now());
  if (!row) throw meshNotFound(meshId);
  return c.json(toCoordinatorRecord(row));
}

export function meshNotFound(meshId: string): CoralError {
  return new CoralError(
    "mesh_not_found",
    `No live coordinator record for mesh ${meshId}: check the invite's mesh id, and that its coordinator is running and registered with this discovery URL.`,
  );
}
