import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeInvite } from "@coral-mesh/sdk-proto";
import { afterEach, describe, expect, it } from "vitest";
import { checkApiExposure, createApiApp } from "../src/api/app.js";
import { loadOrCreateIdentity } from "../src/identity.js";
import { allocateAddress } from "../src/mesh/allocation.js";
import { openStore } from "../src/store/db.js";
import { agents, events } from "../src/store/schema.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function setup(token?: string) {
  const dir = mkdtempSync(join(tmpdir(), "coral-api-"));
  dirs.push(dir);
  const { identity } = await loadOrCreateIdentity(join(dir, "data"));
  const db = openStore(join(dir, "data", "coral.db"));
  const removed: string[] = [];
  const now = 1_800_000_000_000;
  const app = createApiApp({
    db,
    identity,
    discoveryUrl: "https://discovery.example.workers.dev",
    mesh: { address: "100.64.0.1", listenPort: 51820 },
    heartbeatIntervalMs: 10_000,
    discoveryState: () => ({ state: "registered", lastRegistered: now - 5_000, lastError: null, observedAddress: "203.0.113.5" }),
    peers: async () =>
      new Map([
        ["key-web", { endpoint: "198.51.100.7:40001", latestHandshake: now - 3_000 }],
        ["key-phone", { endpoint: "127.0.0.1:43001", latestHandshake: now - 2_000, relay: "discovery.example.workers.dev" }],
      ]),
    relayState: () => ({ host: "discovery.example.workers.dev", state: "open" as const, agents: 1, datagrams: 40 }),
    removePeer: async (key) => {
      removed.push(key);
    },
    now: () => now,
    ...(token ? { token } : {}),
  });
  return { app, db, identity, removed, now };
}

describe("the coordinator API", () => {
  it("reports the mesh, discovery and every agent with its health, path and plugins", async () => {
    const { app, db, identity, now } = await setup();
    const meshIp = allocateAddress(db, "key-web", "web-1", now);
    db.insert(agents)
      .values({
        name: "web-1",
        wireguardKey: "key-web",
        meshIp,
        enrolledAt: now,
        lastHeartbeatAt: now - 4_000,
        plugins: JSON.stringify([{ name: "passive", state: "running" }]),
      })
      .run();
    db.insert(agents).values({ name: "db-1", wireguardKey: "key-db", meshIp: "100.64.0.3", enrolledAt: now, lastHeartbeatAt: null }).run();
    db.insert(agents)
      .values({ name: "phone", wireguardKey: "key-phone", meshIp: "100.64.0.4", enrolledAt: now, lastHeartbeatAt: now - 1_000 })
      .run();
    const status = (await (await app.request("/v1/status")).json()) as Record<string, unknown>;
    expect(status).toMatchObject({
      mesh: { id: identity.meshId, address: "100.64.0.1", listenPort: 51820 },
      discovery: { url: "https://discovery.example.workers.dev", state: "registered", lastRegistered: now - 5_000 },
      relay: { host: "discovery.example.workers.dev", state: "open", agents: 1, datagrams: 40 },
      agents: [
        { name: "db-1", status: "offline", path: "unknown", endpoint: null, relay: null, plugins: [] },
        // Relayed: the relay's local socket is no address of the agent's, so the relay is named instead.
        {
          name: "phone",
          status: "healthy",
          path: "relay",
          endpoint: "relay discovery.example.workers.dev",
          relay: "discovery.example.workers.dev",
        },
        {
          name: "web-1",
          meshIp: "100.64.0.2",
          status: "healthy",
          lastSeen: now - 4_000,
          path: "direct",
          endpoint: "198.51.100.7:40001",
          relay: null,
          plugins: [{ name: "passive", state: "running" }],
        },
      ],
    });
  });

  it("creates invites that decode to this mesh, lists tokens without secrets, and revokes", async () => {
    const { app, identity } = await setup();
    const created = await app.request("/v1/tokens", {
      method: "POST",
      body: JSON.stringify({ ttlMs: 3_600_000, uses: 2, name: "laptops" }),
      headers: { "content-type": "application/json" },
    });
    expect(created.status).toBe(201);
    const { id, invite } = (await created.json()) as { id: string; invite: string };
    const decoded = await decodeInvite(invite);
    expect(decoded).toMatchObject({ meshId: identity.meshId, tokenId: id, discoveryUrl: "https://discovery.example.workers.dev" });
    const listed = await (await app.request("/v1/tokens")).text();
    expect(listed).not.toContain(decoded.secret);
    expect(JSON.parse(listed)).toMatchObject({ tokens: [{ id, name: "laptops", uses: 0, maxUses: 2, state: "active" }] });
    expect((await app.request(`/v1/tokens/${id}`, { method: "DELETE" })).status).toBe(200);
    expect(((await (await app.request("/v1/tokens")).json()) as { tokens: Array<{ state: string }> }).tokens[0]?.state).toBe("revoked");
    const again = await app.request(`/v1/tokens/${id}`, { method: "DELETE" });
    expect(again.status).toBe(403);
    expect(await again.json()).toMatchObject({ code: "token_unknown", message: expect.stringContaining("already revoked") });
    const bad = await app.request("/v1/tokens", { method: "POST", body: JSON.stringify({ uses: 0 }) });
    expect(await bad.json()).toMatchObject({ code: "invalid_body", message: expect.stringContaining("uses") });
  });

  it("removes an agent: its peer is dropped, its address released, the removal audited", async () => {
    const { app, db, removed, now } = await setup();
    const meshIp = allocateAddress(db, "key-web", "web-1", now);
    db.insert(agents).values({ name: "web-1", wireguardKey: "key-web", meshIp, enrolledAt: now }).run();
    expect((await app.request("/v1/agents/web-1", { method: "DELETE" })).status).toBe(200);
    expect(removed).toEqual(["key-web"]);
    expect(allocateAddress(db, "key-new", "new-1", now)).toBe(meshIp);
    expect(await (await app.request("/v1/agents/web-1", { method: "DELETE" })).json()).toMatchObject({ code: "agent_not_found" });
  });

  it("filters events by agent, kind and time", async () => {
    const { app, db } = await setup();
    const event = (agentName: string, kind: string, time: number, position: number) =>
      db.insert(events).values({ agentName, sequence: 1, position, kind, time, subjectKind: "process", subjectId: "pid:1" }).run();
    event("web-1", "process.started", 1_000, 0);
    event("web-1", "process.exited", 2_000, 1);
    event("db-1", "process.started", 3_000, 0);
    const get = async (q: string) =>
      ((await (await app.request(`/v1/events${q}`)).json()) as { events: Array<{ agent: string; kind: string }> }).events;
    expect((await get("")).map((e) => e.agent)).toEqual(["db-1", "web-1", "web-1"]);
    expect(await get("?agent=web-1&kind=process.exited")).toEqual([expect.objectContaining({ agent: "web-1", kind: "process.exited" })]);
    expect((await get("?since=1500")).length).toBe(2);
  });

  it("with a token, refuses requests without it; beyond loopback, refuses to start without one", async () => {
    const token = "t".repeat(40);
    const { app } = await setup(token);
    // Every route, the model's included: nothing of the mesh is read without the token.
    for (const route of [
      "/v1/status",
      "/v1/agents",
      "/v1/tokens",
      "/v1/events",
      "/v1/services",
      "/v1/topology",
      "/v1/services/api/metrics",
    ]) {
      const refused = await app.request(route);
      expect(refused.status, route).toBe(401);
      expect(await refused.json()).toMatchObject({ code: "api_unauthorized" });
    }
    expect((await app.request("/v1/status", { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await app.request("/v1/topology", { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect(() => checkApiExposure("0.0.0.0", undefined)).toThrow(expect.objectContaining({ code: "api_token_required" }));
    expect(() => checkApiExposure("127.0.0.1", undefined)).not.toThrow();
    expect(() => checkApiExposure("0.0.0.0", token)).not.toThrow();
  });
});
