import { type CoordinatorRegistration, CoralError, coordinatorRegistrationSchema, discoveryTtls } from "@coral/sdk-proto";
import type { Context } from "hono";
import { verifySignedRequest } from "../auth/signature.js";
import type { MeshRow } from "../db/schema.js";
import { getMesh, openDb, putMesh } from "../db/store.js";
import type { AppEnv } from "../env.js";
import { parseJsonBody, readBody, requireJsonContentType } from "../http/body.js";
import { addRowsWritten, meshIdParam } from "../http/params.js";
import { toCoordinatorRecord } from "../http/records.js";

/**
 * Registers or refreshes a coordinator record. A refresh that changes nothing
 * is answered from the stored row without a D1 write until the record has less
 * than `coordinatorRewriteBelowSeconds` to live (docs/discovery.md#costs).
 */
export async function putCoordinator(c: Context<AppEnv>): Promise<Response> {
  const meshId = meshIdParam(c);
  requireJsonContentType(c.req.raw);
  const bytes = await readBody(c.req.raw);
  const now = Date.now();
  const { parts } = await verifySignedRequest(c.req.raw, meshId, bytes, now);
  const { text, value } = parseJsonBody(bytes, coordinatorRegistrationSchema);

  const db = openDb(c.env.DB);
  const existing = await getMesh(db, meshId);
  if (existing && parts.timestamp <= existing.signedAt) {
    throw new CoralError(
      "signature_replayed",
      "A registration signed at the same time or later is already stored; sign a new request with the current time.",
    );
  }
  const observedAddress = c.get("clientAddress");
  const live = existing !== undefined && existing.expiresAt > now;
  if (
    live &&
    existing.observedAddress === observedAddress &&
    existing.expiresAt - now > discoveryTtls.coordinatorRewriteBelowSeconds * 1000 &&
    sameRegistration(existing.body, value)
  ) {
    return c.json(toCoordinatorRecord(existing), 200);
  }

  const row: MeshRow = {
    meshId,
    signingKey: parts.key,
    body: text,
    signedAt: parts.timestamp,
    nonce: parts.nonce,
    signature: parts.signature,
    observedAddress,
    createdAt: existing?.createdAt ?? now,
    updatedAt: now,
    expiresAt: now + discoveryTtls.coordinatorRecordSeconds * 1000,
  };
  const { applied, rowsWritten } = await putMesh(db, row);
  addRowsWritten(c, rowsWritten);
  if (!applied) {
    throw new CoralError("signature_replayed", "A newer registration for this mesh was accepted at the same moment; sign a new request.");
  }
  return c.json(toCoordinatorRecord(row), live ? 200 : 201);
}

function sameRegistration(storedBody: string, incoming: CoordinatorRegistration): boolean {
  return canonicalJson(JSON.parse(storedBody)) === canonicalJson(incoming);
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
