import { CoralError, relayHeaders, verifyRelayTicket } from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import { verifySignedRequest } from "../auth/signature.js";
import type { AppEnv } from "../env.js";
import { meshIdParam } from "../http/params.js";
import { roomHeaders } from "../relay/room.js";

/**
 * GET /v1/meshes/:meshId/relay, a WebSocket: the hub with a request signed by the mesh's key,
 * an agent with a relay ticket that key signed. Once checked, the connection is handed to the
 * mesh's relay room (docs/discovery.md, "Relay").
 */
export async function connectRelay(c: Context<AppEnv>): Promise<Response> {
  const meshId = meshIdParam(c);
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new CoralError("relay_upgrade_required", "The relay answers only WebSocket connections (Upgrade: websocket).", {
      headers: { upgrade: "websocket" },
    });
  }
  const role = c.req.header(relayHeaders.role);
  const forwarded = new Headers(c.req.raw.headers);
  if (role === "hub") {
    await verifySignedRequest(c.req.raw, meshId, new Uint8Array(), Date.now());
    forwarded.set(roomHeaders.role, "hub");
  } else if (role === "agent") {
    const header = c.req.header(relayHeaders.ticket);
    if (!header) throw new CoralError("relay_ticket_missing", "An agent's relay connection needs its relay ticket (coral-relay-ticket).");
    const check = await verifyRelayTicket(header, meshId, Date.now());
    if (!check.ok) {
      throw check.expired
        ? new CoralError(
            "relay_ticket_expired",
            "This agent's relay ticket has expired; it gets a new one when it next registers with its coordinator.",
          )
        : new CoralError("relay_ticket_invalid", `The relay ticket is refused: ${check.reason}.`);
    }
    forwarded.set(roomHeaders.role, "agent");
    forwarded.set(roomHeaders.peer, check.ticket.peer);
  } else {
    throw new CoralError("relay_role_invalid", `A relay connection names its role in ${relayHeaders.role}: hub or agent.`);
  }
  const room = c.env.RELAY.get(c.env.RELAY.idFromName(meshId));
  const answer = await room.fetch(new Request(c.req.raw.url, { headers: forwarded }));
  // The room's answer has immutable headers; the app's middleware adds its own.
  return new Response(answer.body, { status: answer.status, headers: answer.headers, webSocket: answer.webSocket });
}
