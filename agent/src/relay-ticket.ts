/**
 * The agent's relay ticket (docs/discovery.md, "Relay"): from the join answer at first, then the
 * newest one a register or heartbeat answer gave. It lets the agent into the mesh's relay room
 * when no direct path to the hub comes up.
 */
import { decodeRelayTicket, encodeRelayTicket } from "@coral-mesh/sdk-proto";
import type { MeshState } from "./join.js";

/** A ticket this close to its expiry is asked to be renewed (see Session's relayTicketDue). */
export const RELAY_TICKET_DUE_MS = 2 * 86_400_000;

/** The ticket as its header carries it, if the agent has one. */
export function currentRelayTicket(mesh: MeshState): string | undefined {
  return mesh.relayTicket ?? (mesh.answer.relayTicket ? encodeRelayTicket(mesh.answer.relayTicket) : undefined);
}

/** The last ticket read and its expiry: the session asks at every report answered, the ticket changes daily. */
let read: { ticket: string; expiresAt: number | undefined } | undefined;

/** Whether the ticket runs out within two days (no ticket: nothing to renew; each register brings one). */
export function relayTicketDue(mesh: MeshState, now: number): boolean {
  const ticket = currentRelayTicket(mesh);
  if (!ticket) return false;
  if (read?.ticket !== ticket) read = { ticket, expiresAt: decodeRelayTicket(ticket)?.expiresAt };
  return read.expiresAt !== undefined && read.expiresAt - now < RELAY_TICKET_DUE_MS;
}
