import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LocalDiscovery, startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import {
  DiscoveryClient,
  decodeInvite,
  encodeRelayTicket,
  inviteTicket,
  issueInvite,
  joinAnswerPayloadSchema,
  meshIdFor,
  type RelayTicket,
  seal,
  signTicket,
  toBase64Url,
  unseal,
  verifyRelayTicket,
} from "@coral-mesh/sdk-proto";
import { generateKeyPair, WireGuardInterface } from "@coral-mesh/wireguard";
import { KEEPALIVE_SECONDS } from "@coral-mesh/wireguard/path";
import { createLab, type Lab, labSkipReason } from "@coral-mesh/wireguard/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Identity, loadOrCreateIdentity } from "../src/identity.js";
import { Enrollment } from "../src/mesh/enrollment.js";
import { createToken } from "../src/mesh/tokens.js";
import { openStore, type Store } from "../src/store/db.js";

const skip = labSkipReason("enrollment over discovery and WireGuard");

describe.skipIf(skip)("enrollment: an agent joins through the discovery Worker and reaches the hub over WireGuard", () => {
  let discovery: LocalDiscovery;
  let client: DiscoveryClient;
  let lab: Lab;
  let hub: WireGuardInterface;
  let spoke: WireGuardInterface | undefined;
  let identity: Identity;
  let db: Store;
  let enrollment: Enrollment;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "coral-enroll-"));
    discovery = await startLocalDiscovery({ port: 0 });
    client = new DiscoveryClient({ url: discovery.url });
    ({ identity } = await loadOrCreateIdentity(join(dir, "data")));
    db = openStore(join(dir, "data", "coral.db"));
    lab = createLab();
    hub = await WireGuardInterface.up({
      name: `${lab.prefix}hub`,
      netns: lab.a,
      privateKey: identity.wireguard.privateKey,
      listenPort: 51820,
      address: "100.64.0.1/10",
    });
    await client.register(identity.signing, {
      v: 1,
      wireguardKey: identity.wireguard.publicKey,
      listenPort: 51820,
      endpoints: [`${lab.addressA}:51820`],
    });
    enrollment = new Enrollment({
      db,
      discovery: client,
      identity,
      addPeer: (peer) => hub.setPeer({ publicKey: peer.publicKey, allowedIps: [`${peer.meshIp}/32`] }),
      endpoints: () => [`${lab.addressA}:51820`],
      grpcPort: 7443,
      heartbeatIntervalMs: 10_000,
    });
  }, 120_000);

  afterAll(async () => {
    await spoke?.down();
    await hub?.down();
    lab?.destroy();
    await discovery?.stop();
    db?.$client.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** What an agent does: verify the record, post a sealed join, read the sealed answer. */
  async function joinMesh(invite: string, name: string, keys = generateKeyPair()) {
    const parsed = await decodeInvite(invite);
    const pinned = Uint8Array.from(Buffer.from(parsed.signingKey, "base64url"));
    const record = await new DiscoveryClient({ url: parsed.discoveryUrl }).lookup(parsed.meshId, pinned);
    const payload = {
      v: 1 as const,
      tokenId: parsed.tokenId,
      secret: parsed.secret,
      name,
      hostname: `${name}.lab`,
      os: "linux",
      arch: "x64",
      agentVersion: "0.1.0",
    };
    const { joinId } = await client.createJoin(
      parsed.meshId,
      keys.publicKey,
      seal(payload, keys.privateKey, record.registration.wireguardKey),
      inviteTicket(parsed),
    );
    await enrollment.pollOnce();
    const answer = await client.getAnswer(parsed.meshId, joinId);
    if (!answer) throw new Error("no answer");
    const sealed = Uint8Array.from(Buffer.from(answer.sealed, "base64url"));
    return { keys, answer: unseal(sealed, keys.privateKey, record.registration.wireguardKey, joinAnswerPayloadSchema) };
  }

  async function invite(maxUses: number): Promise<string> {
    const token = createToken(db, { ttlMs: 3_600_000, maxUses }, Date.now());
    return issueInvite(identity.signing, {
      discoveryUrl: discovery.url,
      tokenId: token.id,
      secret: token.secret,
      expiresAt: token.expiresAt,
    });
  }

  it("accepts a valid invite, allocates an address, and the agent pings the hub through the tunnel", async () => {
    const { keys, answer } = await joinMesh(await invite(1), "web-1");
    expect(answer).toMatchObject({
      ok: true,
      meshIp: "100.64.0.2",
      coordinatorMeshIp: "100.64.0.1",
      endpoints: [`${lab.addressA}:51820`],
      grpcPort: 7443,
    });
    if (!answer.ok) return;
    // A relay ticket for the agent's own key, signed by the mesh key: usable before it ever reaches the hub.
    const relay = await verifyRelayTicket(
      encodeRelayTicket(answer.relayTicket as RelayTicket),
      await meshIdFor(identity.signing.publicKey),
      Date.now(),
    );
    expect(relay).toMatchObject({ ok: true, ticket: { peer: keys.publicKey } });
    expect((await hub.status()).peers).toEqual([expect.objectContaining({ publicKey: keys.publicKey, allowedIps: ["100.64.0.2/32"] })]);

    spoke = await WireGuardInterface.up({
      name: `${lab.prefix}spk`,
      netns: lab.b,
      privateKey: keys.privateKey,
      address: `${answer.meshIp}/32`,
      routes: [answer.meshPrefix],
    });
    await spoke.setPeer({
      publicKey: answer.coordinatorWireguardKey,
      endpoint: answer.endpoints[0],
      allowedIps: [answer.meshPrefix],
      persistentKeepalive: KEEPALIVE_SECONDS,
    });
    const deadline = Date.now() + 10_000;
    while (!lab.exec(lab.b, ["ping", "-c", "1", "-W", "1", answer.coordinatorMeshIp]).ok) {
      if (Date.now() > deadline) throw new Error("no ping through the tunnel");
    }
  }, 60_000);

  it("refuses a used-up token in a sealed answer, and takes no address", async () => {
    const single = await invite(1);
    expect((await joinMesh(single, "web-2")).answer).toMatchObject({ ok: true, meshIp: "100.64.0.3" });
    expect((await joinMesh(single, "web-3")).answer).toMatchObject({ ok: false, code: "token_used_up" });
    expect((await joinMesh(await invite(1), "web-4")).answer).toMatchObject({ ok: true, meshIp: "100.64.0.4" });
  }, 60_000);

  it("refuses a second agent under a name already taken", async () => {
    expect((await joinMesh(await invite(1), "web-1")).answer).toMatchObject({ ok: false, code: "agent_name_taken" });
  }, 60_000);

  it("takes an agent joining again with a new invite under its name, and refuses it under another, spending nothing", async () => {
    const keys = generateKeyPair();
    const first = (await joinMesh(await invite(1), "db-1", keys)).answer;
    expect(first).toMatchObject({ ok: true });
    expect((await joinMesh(await invite(1), "db-1", keys)).answer).toMatchObject({ ok: true, meshIp: first.ok ? first.meshIp : "" });
    const renamed = await invite(1);
    expect((await joinMesh(renamed, "db-2", keys)).answer).toMatchObject({
      ok: false,
      code: "agent_name_taken",
      message: expect.stringContaining("already a member of the mesh as db-1; start it with --name db-1"),
    });
    // The refusal spent no use of the invite.
    expect((await joinMesh(renamed, "db-3")).answer).toMatchObject({ ok: true });
  }, 60_000);
});

describe("enrollment across a restart between enrolling and answering", () => {
  let discovery: LocalDiscovery;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "coral-enroll-restart-"));
    discovery = await startLocalDiscovery({ port: 0 });
  }, 120_000);
  afterAll(async () => {
    await discovery?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("answers the same join the same way after the restart, spending the token once", async () => {
    const client = new DiscoveryClient({ url: discovery.url });
    const { identity } = await loadOrCreateIdentity(join(dir, "data"));
    await client.register(identity.signing, {
      v: 1,
      wireguardKey: identity.wireguard.publicKey,
      listenPort: 51820,
      endpoints: ["192.0.2.1:51820"],
    });
    let db = openStore(join(dir, "data", "coral.db"));
    const { agent, joinId } = await requestJoin(client, identity, db, "web-9");
    const options = {
      identity,
      addPeer: async () => {},
      endpoints: () => ["192.0.2.1:51820"],
      grpcPort: 51821,
      heartbeatIntervalMs: 10_000,
    };

    // The coordinator enrolls the agent, then loses its connection (or dies) before answering.
    const cut = Object.assign(Object.create(client) as DiscoveryClient, {
      answerJoin: async () => {
        throw new Error("connection reset");
      },
    });
    await expect(new Enrollment({ ...options, db, discovery: cut }).pollOnce()).rejects.toThrow("connection reset");
    db.$client.close();

    db = openStore(join(dir, "data", "coral.db"));
    expect(await new Enrollment({ ...options, db, discovery: client }).pollOnce()).toEqual([
      { joinId, agent: "web-9", meshIp: "100.64.0.2" },
    ]);
    const answer = await client.getAnswer(identity.meshId, joinId);
    const opened = unseal(
      Buffer.from(answer?.sealed ?? "", "base64url"),
      agent.privateKey,
      identity.wireguard.publicKey,
      joinAnswerPayloadSchema,
    );
    expect(opened).toMatchObject({ ok: true, meshIp: "100.64.0.2" });
    expect(db.$client.prepare("SELECT uses FROM tokens").get()).toEqual({ uses: 1 });
    expect(db.$client.prepare("SELECT count(*) AS n FROM audit_log WHERE action = 'agent.enrolled'").get()).toEqual({ n: 1 });
    db.$client.close();
  }, 60_000);

  it("aims the hub at the address discovery saw only when that is an IPv4 address (discovery is not trusted)", async () => {
    const client = new DiscoveryClient({ url: discovery.url });
    const { identity } = await loadOrCreateIdentity(join(dir, "data"));
    const db = openStore(join(dir, "data", "coral.db"));
    const peers: Array<{ name: string; endpoint: string | undefined }> = [];
    for (const [name, observed] of [
      ["web-10", "198.51.100.7"],
      ["web-11", "198.51.100.7\nallowed_ip=0.0.0.0/0"],
    ] as const) {
      await requestJoin(client, identity, db, name, { listenPort: 40000 });
      // What a discovery that lies would list.
      const lying = Object.assign(Object.create(client) as DiscoveryClient, {
        listJoins: async (...args: Parameters<DiscoveryClient["listJoins"]>) => {
          const page = await client.listJoins(...args);
          return { ...page, joins: page.joins.map((j) => ({ ...j, observedAddress: observed })) };
        },
      });
      await new Enrollment({
        identity,
        db,
        discovery: lying,
        addPeer: async (peer) => {
          peers.push({ name, endpoint: peer.endpoint });
        },
        endpoints: () => ["192.0.2.1:51820"],
        grpcPort: 51821,
        heartbeatIntervalMs: 10_000,
      }).pollOnce();
    }
    expect(peers).toEqual([
      { name: "web-10", endpoint: "198.51.100.7:40000" },
      { name: "web-11", endpoint: undefined },
    ]);
    expect(db.$client.prepare("SELECT name, endpoint FROM agents WHERE name LIKE 'web-1_' ORDER BY name").all()).toEqual([
      { name: "web-10", endpoint: "198.51.100.7:40000" },
      { name: "web-11", endpoint: null },
    ]);
    db.$client.close();
  }, 60_000);
});

/** A sealed join request from a new agent key, with a fresh single-use token of the coordinator's. */
async function requestJoin(client: DiscoveryClient, identity: Identity, db: Store, name: string, extra: { listenPort?: number } = {}) {
  const token = createToken(db, { ttlMs: 3_600_000, maxUses: 1 }, Date.now());
  const agent = generateKeyPair();
  const payload = {
    v: 1 as const,
    tokenId: token.id,
    secret: token.secret,
    name,
    hostname: name,
    os: "linux",
    arch: "x64",
    agentVersion: "0.1.0",
    ...extra,
  };
  const ticket = {
    signingKey: toBase64Url(identity.signing.publicKey),
    tokenId: token.id,
    expiresAt: token.expiresAt,
    signature: await signTicket(identity.signing, { tokenId: token.id, expiresAt: token.expiresAt }),
  };
  const { joinId } = await client.createJoin(
    identity.meshId,
    agent.publicKey,
    seal(payload, agent.privateKey, identity.wireguard.publicKey),
    ticket,
  );
  return { agent, joinId };
}
