/**
 * Enrollment: the coordinator's side of a join. It polls discovery for join requests,
 * opens each sealed payload with its WireGuard key, redeems the token, allocates the
 * agent's mesh address, adds the WireGuard peer, and posts a sealed answer, accepted or
 * refused with the reason.
 */

import { isIPv4 } from "node:net";
import {
  CoralError,
  type DiscoveryClient,
  fromBase64Url,
  type JoinAnswerPayload,
  type JoinPayload,
  joinAnswerPayloadSchema,
  joinPayloadSchema,
  type PendingJoin,
  type RelayTicket,
  seal,
  unseal,
} from "@coral-mesh/sdk-proto";
import { eq } from "drizzle-orm";
import type { Identity } from "../identity.js";
import type { Store } from "../store/db.js";
import type { Observe } from "../store/observations.js";
import { agents, auditLog, joinAnswers } from "../store/schema.js";
import { allocateAddress, COORDINATOR_ADDRESS, MESH_PREFIX } from "./allocation.js";
import { issueRelayTicket } from "./relay-tickets.js";
import { redeemToken } from "./tokens.js";

export interface EnrollmentOptions {
  db: Store;
  discovery: DiscoveryClient;
  identity: Identity;
  /** Adds (or updates) the agent as a WireGuard peer of the hub. */
  /** Adds an enrolled agent as a peer; `endpoint` is where it is likely reachable, if known. */
  addPeer: (peer: { publicKey: string; meshIp: string; endpoint: string | undefined }) => Promise<void>;
  /** Where agents reach the hub, best first. */
  endpoints: () => string[];
  grpcPort: number;
  heartbeatIntervalMs: number;
  now?: () => number;
  log?: (line: string) => void;
  /** Records each enrollment as an event (`agent.enrolled`). */
  observe?: Observe;
}

export interface EnrollmentResult {
  joinId: string;
  agent?: string;
  meshIp?: string;
  refused?: { code: string; message: string };
}

export class Enrollment {
  private cursor: string | undefined;

  constructor(private readonly options: EnrollmentOptions) {}

  /** Handles every join request waiting at discovery; returns what became of each. */
  async pollOnce(): Promise<EnrollmentResult[]> {
    const results: EnrollmentResult[] = [];
    for (;;) {
      const page = await this.options.discovery.listJoins(this.options.identity.signing, this.cursor);
      for (const join of page.joins) results.push(await this.handle(join));
      this.cursor = page.cursor;
      if (!page.more) return results;
    }
  }

  private async handle(join: PendingJoin): Promise<EnrollmentResult> {
    const { identity, discovery, db } = this.options;
    const stored = db.select().from(joinAnswers).where(eq(joinAnswers.joinId, join.joinId)).get();
    // Handled before a restart but not answered yet: the same answer again, no second token use.
    const answer = stored
      ? joinAnswerPayloadSchema.parse(JSON.parse(stored.answer))
      : this.decide(join, await issueRelayTicket(identity.signing, join.wireguardKey, this.options.now?.() ?? Date.now()));
    if (answer.ok) {
      const endpoint = db
        .select({ endpoint: agents.endpoint })
        .from(agents)
        .where(eq(agents.wireguardKey, join.wireguardKey))
        .get()?.endpoint;
      await this.options.addPeer({ publicKey: join.wireguardKey, meshIp: answer.meshIp, endpoint: endpoint ?? undefined });
    }
    try {
      await discovery.answerJoin(identity.signing, join.joinId, seal(answer, identity.wireguard.privateKey, join.wireguardKey));
    } catch (error) {
      // An answer from before a restart reached discovery after all: the agent has it.
      if (!(error instanceof CoralError && error.code === "answer_exists")) throw error;
    }
    if (!answer.ok) return { joinId: join.joinId, refused: { code: answer.code, message: answer.message } };
    return { joinId: join.joinId, agent: stored?.agentName ?? undefined, meshIp: answer.meshIp };
  }

  /**
   * Accepts or refuses a join. Everything it stores (token use, address, agent, audit and
   * the answer itself) is one transaction, so a crash leaves all of it or none.
   */
  private decide(join: PendingJoin, relayTicket: RelayTicket): JoinAnswerPayload {
    const { identity, db } = this.options;
    const now = this.options.now?.() ?? Date.now();
    let payload: JoinPayload | undefined;
    try {
      const sealed = fromBase64Url(join.sealed) ?? new Uint8Array();
      payload = unseal(sealed, identity.wireguard.privateKey, join.wireguardKey, joinPayloadSchema);
      const accepted = payload;
      const answer = db.transaction((tx) => {
        const meshIp = this.enroll(join, accepted, now);
        const answer: JoinAnswerPayload = {
          v: 1,
          ok: true,
          meshIp,
          meshPrefix: MESH_PREFIX,
          coordinatorMeshIp: COORDINATOR_ADDRESS,
          coordinatorWireguardKey: identity.wireguard.publicKey,
          endpoints: this.options.endpoints(),
          observedAddress: join.observedAddress,
          grpcPort: this.options.grpcPort,
          heartbeatIntervalMs: this.options.heartbeatIntervalMs,
          relayTicket,
        };
        tx.insert(joinAnswers)
          .values({
            joinId: join.joinId,
            answer: JSON.stringify(answer),
            agentName: accepted.name,
            wireguardKey: join.wireguardKey,
            answeredAt: now,
          })
          .run();
        return answer;
      });
      this.options.log?.(
        `enrolled ${accepted.name} as ${answer.ok ? answer.meshIp : "?"} (from ${join.observedAddress ?? "an unknown address"})`,
      );
      return answer;
    } catch (error) {
      if (!(error instanceof CoralError)) throw error;
      const answer: JoinAnswerPayload = { v: 1, ok: false, code: error.code, message: error.message };
      db.transaction((tx) => {
        tx.insert(joinAnswers)
          .values({
            joinId: join.joinId,
            answer: JSON.stringify(answer),
            agentName: payload?.name ?? null,
            wireguardKey: join.wireguardKey,
            answeredAt: now,
          })
          .run();
        tx.insert(auditLog)
          .values({
            time: now,
            action: "join.refused",
            subject: payload?.tokenId ?? join.joinId,
            details: JSON.stringify({ code: error.code, agent: payload?.name, from: join.observedAddress }),
          })
          .run();
      });
      this.options.log?.(`refused join ${join.joinId}${payload ? ` from ${payload.name}` : ""}: ${error.message}`);
      return answer;
    }
  }

  /** The database side of accepting a join; runs inside decide()'s transaction. */
  private enroll(join: PendingJoin, payload: JoinPayload, now: number): string {
    const { db } = this.options;
    const existing = db.select().from(agents).where(eq(agents.name, payload.name)).get();
    if (existing && existing.wireguardKey !== join.wireguardKey) {
      throw new CoralError(
        "agent_name_taken",
        `Another agent is already called ${payload.name}; start this one with another --name, or remove the old one with \`coral agents remove ${payload.name}\`.`,
      );
    }
    // The same key under another name (an agent joining again with a new invite and another
    // --name): one key is one agent, so the name it has stands.
    const sameKey = existing
      ? undefined
      : db.select({ name: agents.name }).from(agents).where(eq(agents.wireguardKey, join.wireguardKey)).get();
    if (sameKey) {
      throw new CoralError(
        "agent_name_taken",
        `This agent is already a member of the mesh as ${sameKey.name}; start it with --name ${sameKey.name}, or remove that one first with \`coral agents remove ${sameKey.name}\`.`,
      );
    }
    redeemToken(db, payload.tokenId, payload.secret, now);
    const meshIp = allocateAddress(db, join.wireguardKey, payload.name, now);
    // Where the agent is likely reachable: the address discovery saw, with the agent's own
    // WireGuard port (right behind a NAT that keeps ports). The hub sends there first, which
    // opens a filtering NAT in front of the hub to the agent; WireGuard corrects the port
    // with the agent's first authenticated packet.
    // Discovery says what it saw, and discovery is not trusted: an IPv4 address or nothing.
    const observed = join.observedAddress;
    const endpoint = observed && payload.listenPort && isIPv4(observed) ? `${observed}:${payload.listenPort}` : null;
    const details = {
      meshIp,
      endpoint,
      tokenId: payload.tokenId,
      hostname: payload.hostname,
      os: payload.os,
      arch: payload.arch,
      version: payload.agentVersion,
    };
    db.insert(agents)
      .values({ name: payload.name, wireguardKey: join.wireguardKey, enrolledAt: now, ...details })
      .onConflictDoUpdate({ target: agents.name, set: details })
      .run();
    db.insert(auditLog)
      .values({
        time: now,
        action: "agent.enrolled",
        subject: payload.name,
        details: JSON.stringify({ meshIp, tokenId: payload.tokenId, from: join.observedAddress }),
      })
      .run();
    this.options.observe?.({
      kind: "agent.enrolled",
      agent: payload.name,
      subject: { kind: "agent", id: payload.name, name: payload.name },
      attributes: { meshIp, ...(join.observedAddress ? { from: join.observedAddress } : {}) },
      time: now,
    });
    return meshIp;
  }
}
