import {
  CoralError,
  discoveryLimits,
  discoveryTtls,
  type JoinCreated,
  joinRequestSchema,
  randomBytes,
  toBase64Url,
  verifyTicket,
} from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import { insertJoin, openDb } from "../db/store.js";
import type { AppEnv } from "../env.js";
import { parseJsonBody, readBody, requireJsonContentType } from "../http/body.js";
import { addRowsWritten, meshIdParam } from "../http/params.js";
import { meshNotFound } from "./coordinator-get.js";

/** How long an agent should wait after `join_ticket_busy`: a running coordinator answers within a poll. */
export const TICKET_BUSY_RETRY_SECONDS = 5;

/**
 * An agent asks to join. Discovery stores the sealed payload it cannot read, once the join
 * ticket from the agent's invite shows that the mesh's coordinator issued its token.
 */
export async function createJoin(c: Context<AppEnv>): Promise<Response> {
  const meshId = meshIdParam(c);
  requireJsonContentType(c.req.raw);
  const { value } = parseJsonBody(await readBody(c.req.raw), joinRequestSchema);
  const now = Date.now();
  const { ticket } = value;
  if (!ticket) {
    throw new CoralError(
      "join_ticket_missing",
      "This join request carries no join ticket, so discovery cannot queue it. The invite was made before tickets existed: create a new one with `coral token create` on an up-to-date coordinator, and join with it.",
    );
  }
  if (ticket.expiresAt <= now) {
    throw new CoralError(
      "join_ticket_expired",
      `This invite's join ticket expired ${new Date(ticket.expiresAt).toISOString()}, with its token; create a new invite with \`coral token create\`.`,
    );
  }
  const check = await verifyTicket(ticket, meshId);
  if (!check.ok) {
    throw new CoralError(
      "join_ticket_invalid",
      `This join ticket is not one the mesh's coordinator signed: ${check.reason}. Join with the invite exactly as \`coral token create\` printed it.`,
    );
  }
  const created: JoinCreated = {
    joinId: toBase64Url(randomBytes(16)),
    expiresAt: now + discoveryTtls.joinRequestSeconds * 1000,
  };
  const join = {
    joinId: created.joinId,
    meshId,
    wireguardKey: value.wireguardKey,
    sealed: value.sealed,
    ticketId: ticket.tokenId,
    observedAddress: c.get("clientAddress"),
    createdAt: now,
    expiresAt: created.expiresAt,
  };
  const outcome = await insertJoin(openDb(c.env.DB), join, {
    perMesh: discoveryLimits.maxPendingJoinsPerMesh,
    perTicket: discoveryLimits.maxPendingJoinsPerTicket,
  });
  if (outcome.kind === "mesh_not_found") throw meshNotFound(meshId);
  if (outcome.kind === "ticket_busy") {
    throw new CoralError(
      "join_ticket_busy",
      `This invite's token already has ${discoveryLimits.maxPendingJoinsPerTicket} join requests waiting for the coordinator; retry when they are answered (the coordinator answers within seconds when it runs), or use another invite.`,
      { headers: { "retry-after": String(TICKET_BUSY_RETRY_SECONDS) } },
    );
  }
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
