/**
 * Relay tickets (docs/discovery.md, "Relay"): the mesh key's word that an agent may use the
 * mesh's relay room. Given at the join (so an agent that never reaches the hub directly can
 * relay from the start), again at each register, and about once a day in a heartbeat's answer;
 * a removed agent is refused before it is given one, so its last ticket runs out.
 */
import { encodeRelayTicket, type RelayTicket, relayLimits, type SigningKeyPair, signRelayTicket } from "@coral-mesh/sdk-proto";

/**
 * How long a ticket lasts: six days, so that a partition of days does not strand a relayed
 * agent, and a day short of the longest the room accepts, so a coordinator's clock ahead of the
 * Worker's does not get its tickets refused.
 */
export const RELAY_TICKET_MS = relayLimits.maxTicketMs - 86_400_000;
/** A heartbeat's answer carries a new ticket when the last one given is older than this. */
export const RELAY_TICKET_RENEW_MS = 86_400_000;

export function issueRelayTicket(signing: SigningKeyPair, wireguardKey: string, now: number): Promise<RelayTicket> {
  return signRelayTicket(signing, wireguardKey, now + RELAY_TICKET_MS);
}

/** Who was given a ticket when, in this run of the coordinator. */
export class RelayTickets {
  private readonly given = new Map<string, number>();

  constructor(private readonly signing: SigningKeyPair) {}

  /** A ticket for this agent now, as its header carries it. */
  async issue(wireguardKey: string, now: number): Promise<string> {
    this.given.set(wireguardKey, now);
    return encodeRelayTicket(await issueRelayTicket(this.signing, wireguardKey, now));
  }

  /** A ticket when this agent's last one from this run is a day old (or none was given), else "". */
  async renew(wireguardKey: string, now: number): Promise<string> {
    const last = this.given.get(wireguardKey);
    return last !== undefined && now - last < RELAY_TICKET_RENEW_MS ? "" : this.issue(wireguardKey, now);
  }
}
