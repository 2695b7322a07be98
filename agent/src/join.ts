/**
 * Joining a mesh from an invite, and what the agent keeps of it. The agent checks the
 * coordinator's record at discovery against the signing key pinned in the invite, posts
 * its request sealed to the coordinator's WireGuard key, and waits for the sealed
 * answer. Discovery can neither read nor forge either.
 */
import { createSocket } from "node:dgram";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import {
  CoralError,
  DiscoveryClient,
  DiscoveryError,
  decodeInvite,
  fromBase64Url,
  inviteTicket,
  isErrorCode,
  type JoinAccepted,
  joinAcceptedSchema,
  joinAnswerPayloadSchema,
  seal,
  unseal,
} from "@coral-mesh/sdk-proto";
import { generateKeyPair, publicKeyOf, type WireGuardKeyPair } from "@coral-mesh/wireguard";
import * as z from "zod";
import { nodeHttpTransport } from "./http.js";

export const KEY_FILE = "wireguard.key";
export const MESH_FILE = "mesh.json";

/** What the agent remembers of its mesh, so that a restart needs no invite. */
export const meshStateSchema = z.strictObject({
  name: z.string(),
  meshId: z.string(),
  discoveryUrl: z.string(),
  /** The mesh's signing key (base64url), pinned from the invite. */
  signingKey: z.string(),
  answer: joinAcceptedSchema,
  joinedAt: z.number(),
  /** The WireGuard port the agent told the coordinator about; kept across restarts. */
  listenPort: z.number().int().min(1).max(65535).optional(),
  /** The invite's token: an invite with another one replaces this membership (see loadOrJoin). */
  tokenId: z.string().optional(),
  /** When the agent first registered with the coordinator: from then on, NATs are not why it cannot. */
  reachedAt: z.number().optional(),
  /** The newest relay ticket the coordinator gave (as its header carries it); the join answer's before that. */
  relayTicket: z.string().optional(),
});
export type MeshState = z.infer<typeof meshStateSchema>;

export function loadOrCreateKeys(dataDir: string): WireGuardKeyPair {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, KEY_FILE);
  if (!existsSync(path)) writeFileSync(path, `${generateKeyPair().privateKey}\n`, { mode: 0o600, flag: "wx" });
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new CoralError(
      "key_permissions",
      `${path} is readable by other users (mode ${mode.toString(8)}); run \`chmod 600 ${path}\` and start again.`,
    );
  }
  const privateKey = readFileSync(path, "utf8").trim();
  try {
    return { privateKey, publicKey: publicKeyOf(privateKey) };
  } catch {
    throw new CoralError("key_invalid", `${path} is not a WireGuard private key; remove it and join again with a new invite.`);
  }
}

export function loadMeshState(dataDir: string): MeshState | undefined {
  const path = join(dataDir, MESH_FILE);
  if (!existsSync(path)) return undefined;
  const parsed = meshStateSchema.safeParse(JSON.parse(readFileSync(path, "utf8")));
  if (!parsed.success) throw new CoralError("config_invalid", `${path} is damaged; remove it and join again with a new invite.`);
  return parsed.data;
}

/** Written whole or not at all: a crash mid-write leaves the membership as it was. */
export function saveMeshState(dataDir: string, state: MeshState): void {
  const path = join(dataDir, MESH_FILE);
  writeFileSync(`${path}.new`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.new`, path);
}

export interface JoinOptions {
  invite: string;
  name: string;
  keys: WireGuardKeyPair;
  agentVersion: string;
  /** The WireGuard port the agent will listen on. */
  listenPort: number;
  /** How long to wait for the coordinator's answer. */
  timeoutMs?: number;
  progress?: (step: string) => void;
}

/** The agent's name by default: the hostname, lowercased, with anything else made a dash. */
export function defaultAgentName(): string {
  return (
    hostname()
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 63) || "agent"
  );
}

export async function joinMesh(options: JoinOptions): Promise<MeshState> {
  const progress = options.progress ?? (() => {});
  const invite = await decodeInvite(options.invite);
  if (invite.expiresAt <= Date.now()) {
    throw new CoralError("token_expired", `This invite expired ${new Date(invite.expiresAt).toISOString()}; ask for a new one.`);
  }
  const discovery = new DiscoveryClient({ url: invite.discoveryUrl, transport: nodeHttpTransport });
  progress(`verifying the coordinator's record for mesh ${invite.meshId} at ${invite.discoveryUrl}`);
  const record = await discovery.lookup(invite.meshId, fromBase64Url(invite.signingKey) ?? new Uint8Array());
  const coordinatorKey = record.registration.wireguardKey;
  const payload = {
    v: 1 as const,
    tokenId: invite.tokenId,
    secret: invite.secret,
    name: options.name,
    hostname: hostname(),
    os: process.platform,
    arch: process.arch,
    agentVersion: options.agentVersion,
    listenPort: options.listenPort,
  };
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const { joinId } = await queueJoin(
    () =>
      discovery.createJoin(
        invite.meshId,
        options.keys.publicKey,
        seal(payload, options.keys.privateKey, coordinatorKey),
        inviteTicket(invite),
      ),
    deadline,
    progress,
  );
  progress("waiting for the coordinator's answer");
  // Every quarter second while an answer is due (the coordinator looks as often); then slower.
  const patientAfter = Date.now() + 30_000;
  for (;;) {
    const sealed = await discovery.getAnswer(invite.meshId, joinId);
    if (sealed) {
      const answer = unseal(
        fromBase64Url(sealed.sealed) ?? new Uint8Array(),
        options.keys.privateKey,
        coordinatorKey,
        joinAnswerPayloadSchema,
      );
      if (!answer.ok) throw new CoralError(isErrorCode(answer.code) ? answer.code : "internal_error", answer.message);
      progress(`accepted as ${options.name} with mesh address ${answer.meshIp}`);
      return {
        name: options.name,
        meshId: invite.meshId,
        discoveryUrl: invite.discoveryUrl,
        signingKey: invite.signingKey,
        answer: answer satisfies JoinAccepted,
        joinedAt: Date.now(),
        listenPort: options.listenPort,
        tokenId: invite.tokenId,
      };
    }
    if (Date.now() > deadline) {
      throw new CoralError(
        "answer_pending",
        `The coordinator did not answer within ${Math.round((options.timeoutMs ?? 120_000) / 1000)} s; is \`coral coordinator start\` running? Try again.`,
      );
    }
    await new Promise((r) => setTimeout(r, Date.now() < patientAfter ? 250 : 2_000));
  }
}

/**
 * Queues the join request. While the invite's token has all the join requests discovery lets
 * one ticket queue (`join_ticket_busy`, e.g. agents of a fleet joining with one invite at once),
 * waits as discovery says and tries again, until the deadline.
 */
export async function queueJoin<T>(
  create: () => Promise<T>,
  deadline: number,
  progress: (step: string) => void,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => number = Date.now,
): Promise<T> {
  for (;;) {
    try {
      return await create();
    } catch (error) {
      if (!(error instanceof DiscoveryError) || error.code !== "join_ticket_busy") throw error;
      const waitMs = (error.retryAfterSeconds ?? 5) * 1000;
      if (now() + waitMs > deadline) throw error;
      progress(`this invite's token has join requests waiting at discovery; trying again in ${waitMs / 1000} s`);
      await sleep(waitMs);
    }
  }
}

/** A UDP port nothing on this host uses right now, for WireGuard to listen on. */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", reject);
    socket.bind(0, () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}
