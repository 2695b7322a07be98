import { CoralError, cursorSchema, joinIdSchema, meshIdSchema } from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import type { AppEnv } from "../env.js";

export function meshIdParam(c: Context<AppEnv>): string {
  const meshId = c.req.param("meshId") ?? "";
  if (!meshIdSchema.safeParse(meshId).success) {
    throw new CoralError("invalid_mesh_id", "A mesh id is 32 characters of lowercase base32; copy it from `coral status` or the invite.");
  }
  return meshId;
}

export function joinIdParam(c: Context<AppEnv>): string {
  const joinId = c.req.param("joinId") ?? "";
  if (!joinIdSchema.safeParse(joinId).success) {
    throw new CoralError("invalid_join_id", "A join id is 22 characters of base64url, as returned by POST /v1/meshes/{meshId}/joins.");
  }
  return joinId;
}

export function cursorQuery(c: Context<AppEnv>): number {
  const after = c.req.query("after");
  if (after === undefined) return 0;
  if (!cursorSchema.safeParse(after).success) {
    throw new CoralError(
      "invalid_cursor",
      "`after` must be the `cursor` of a previous page (a decimal number), or left out to start from the beginning.",
    );
  }
  return Number(after);
}

/** Records D1 rows written by this request, for the debug header. */
export function addRowsWritten(c: Context<AppEnv>, rows: number): void {
  c.set("rowsWritten", c.get("rowsWritten") + rows);
}
