import { CoralError, coordinatorRegistrationSchema, discoveryTtls, sha256, toHex } from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import { verifySignedRequest } from "../auth/signature.js";
import type { MeshRow } from "../db/schema.js";
import { openDb, putMesh } from "../db/store.js";
import type { AppEnv } from "../env.js";
import { parseJsonBody, readBody, requireJsonContentType } from "../http/body.js";
import { addRowsWritten, meshIdParam } from "../http/params.js";
import { toCoordinatorRecord } from "../http/records.js";

/**
 * Registers or refreshes a coordinator record. A refresh that changes nothing
 * is answered from the stored row without a D1 write until the record has less
 * than `coordinatorRewriteBelowSeconds` to live (docs/discovery.md#what-it-costs).
 */
export async function putCoordinator(c: Context<AppEnv>): Promise<Response> {
  const meshId = meshIdParam(c);
  requireJsonContentType(c.req.raw);
  const bytes = await readBody(c.req.raw);
  const now = Date.now();
  const { parts } = await verifySignedRequest(c.req.raw, meshId, bytes, now);
  const { text, value } = parseJsonBody(bytes, coordinatorRegistrationSchema);

  const row: MeshRow = {
    meshId,
    signingKey: parts.key,
    body: text,
    registrationHash: toHex(await sha256(canonicalJson(value))),
    signedAt: parts.timestamp,
    nonce: parts.nonce,
    signature: parts.signature,
    observedAddress: c.get("clientAddress"),
    createdAt: now,
    updatedAt: now,
    expiresAt: now + discoveryTtls.coordinatorRecordSeconds * 1000,
  };
  const outcome = await putMesh(openDb(c.env.DB), row, now, discoveryTtls.coordinatorRewriteBelowSeconds * 1000);
  switch (outcome.kind) {
    case "written":
      addRowsWritten(c, outcome.rowsWritten);
      return c.json(toCoordinatorRecord(outcome.row), outcome.created ? 201 : 200);
    case "unchanged":
      return c.json(toCoordinatorRecord(outcome.row), 200);
    case "superseded":
      throw new CoralError(
        "signature_replayed",
        "A registration signed at the same time or later is already stored; sign a new request with the current time.",
      );
  }
}

/** JSON with object keys sorted, so key order alone never counts as a change. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
