/**
 * Enrollment: the coordinator's side of a join. It polls discovery for join requests,
 * opens each sealed payload with its WireGuard key, redeems the token, allocates the
 * agent's mesh address, adds the WireGuard peer, and posts a sealed answer, accepted or
 * refused with the reason.
 */
import {
  CoralError,
  type DiscoveryClient,
  fromBase64Url,
  type JoinAnswerPayload,
  type JoinPayload,
  joinPayloadSchema,
  type PendingJoin,
  seal,
  unseal,
} from "@coral/sdk-proto";
import { eq } from "drizzle-orm";
import type { Identity } from "../identity.js";
import type { Store } from "../store/db.js";
import { agents, auditLog } from "../store/schema.js";
import { allocateAddress, COORDINATOR_ADDRESS, MESH_PREFIX } from "./allocation.js";
import { redeemToken } from "./tokens.js";

export interface EnrollmentOptions {
  db: Store;
  discovery: DiscoveryClient;
  identity: Identity;
  /** Adds (or updates) the agent as a WireGuard peer of the hub. */
  addPeer: (peer: { publicKey: string; meshIp: string }) => Promise<void>;
  /** Where agents reach the hub, best first. */
  endpoints: () => string[];
  grpcPort: number;
  heartbeatIntervalMs: number;
  now?: () => number;
  log?: (line: string) => void;
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
    const { identity, discovery } = this.options;
    const now = this.options.now?.() ?? Date.now();
    let answer: JoinAnswerPayload;
    let result: EnrollmentResult;
    try {
      const sealed = fromBase64Url(join.sealed) ?? new Uint8Array();
      const payload = unseal(sealed, identity.wireguard.privateKey, join.wireguardKey, joinPayloadSchema);
      const meshIp = await this.enroll(join, payload, now);
      answer = {
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
      };
      result = { joinId: join.joinId, agent: payload.name, meshIp };
      this.options.log?.(`enrolled ${payload.name} as ${meshIp} (from ${join.observedAddress ?? "an unknown address"})`);
    } catch (error) {
      if (!(error instanceof CoralError)) throw error;
      answer = { v: 1, ok: false, code: error.code, message: error.message };
      result = { joinId: join.joinId, refused: { code: error.code, message: error.message } };
      this.options.log?.(`refused join ${join.joinId}: ${error.message}`);
    }
    await discovery.answerJoin(identity.signing, join.joinId, seal(answer, identity.wireguard.privateKey, join.wireguardKey));
    return result;
  }

  private async enroll(join: PendingJoin, payload: JoinPayload, now: number): Promise<string> {
    const { db } = this.options;
    const existing = db.select().from(agents).where(eq(agents.name, payload.name)).get();
    if (existing && existing.wireguardKey !== join.wireguardKey) {
      throw new CoralError(
        "agent_name_taken",
        `Another agent is already called ${payload.name}; start this one with another --name, or remove the old one with \`coral agents remove ${payload.name}\`.`,
      );
    }
    redeemToken(db, payload.tokenId, payload.secret, now);
    const meshIp = allocateAddress(db, join.wireguardKey, payload.name, now);
    const details = {
      meshIp,
      tokenId: payload.tokenId,
      hostname: payload.hostname,
      os: payload.os,
      arch: payload.arch,
      version: payload.agentVersion,
    };
    db.transaction((tx) => {
      tx.insert(agents)
        .values({ name: payload.name, wireguardKey: join.wireguardKey, enrolledAt: now, ...details })
        .onConflictDoUpdate({ target: agents.name, set: details })
        .run();
      tx.insert(auditLog)
        .values({
          time: now,
          action: "agent.enrolled",
          subject: payload.name,
          details: JSON.stringify({ meshIp, tokenId: payload.tokenId, from: join.observedAddress }),
        })
        .run();
    });
    await this.options.addPeer({ publicKey: join.wireguardKey, meshIp });
    return meshIp;
  }
}
