import { encodeRelayTicket, generateSigningKeyPair, signRelayTicket } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import type { MeshState } from "../src/join.js";
import { currentRelayTicket, RELAY_TICKET_DUE_MS, relayTicketDue } from "../src/relay-ticket.js";

const PEER = Buffer.alloc(32, 3).toString("base64");
const NOW = 1_800_000_000_000;

describe("the agent's relay ticket", () => {
  it("is the newest given, the join answer's before that, and due within two days of its expiry", async () => {
    const keys = await generateSigningKeyPair();
    const fromJoin = await signRelayTicket(keys, PEER, NOW + 6 * 86_400_000);
    const mesh = { answer: { relayTicket: fromJoin } } as unknown as MeshState;
    expect(currentRelayTicket(mesh)).toBe(encodeRelayTicket(fromJoin));
    expect(relayTicketDue(mesh, NOW)).toBe(false);
    expect(relayTicketDue(mesh, NOW + 6 * 86_400_000 - RELAY_TICKET_DUE_MS + 1)).toBe(true);

    // A renewed ticket replaces the join's, and its own expiry counts.
    mesh.relayTicket = encodeRelayTicket(await signRelayTicket(keys, PEER, NOW + 20 * 86_400_000));
    expect(relayTicketDue(mesh, NOW + 6 * 86_400_000)).toBe(false);
    expect(relayTicketDue({ answer: {} } as unknown as MeshState, NOW)).toBe(false);
  });
});
