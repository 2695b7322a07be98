/**
 * The mesh through failures, across NATs: a NAT router that reboots, discovery that goes
 * away, a coordinator restart, an agent cut off for a minute, and an agent removed. Reports
 * are counted in the coordinator's store: every batch an agent made arrives exactly once.
 */
import { join } from "node:path";
import { waitingBatches } from "@coral-mesh/agent";
import type { LabCoordinator } from "@coral-mesh/coordinator/testing";
import { labSkipReason, missingForNatLab, type Site } from "@coral-mesh/wireguard/testing";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthWatch, LabAgent, labCoordinator, type MeshLab, startMeshLab } from "../src/mesh.js";

const skip = missingForNatLab() ? labSkipReason("the mesh fault tests") !== null : false;

describe.skipIf(skip)("the mesh through failures", () => {
  let lab: MeshLab;
  let coordinator: LabCoordinator;
  const watch = new HealthWatch();
  let portSite: Site;
  let symSite: Site;
  /** A third host, for the agent that joins while discovery is down. */
  let lateSite: Site;
  let web: LabAgent;
  let db: LabAgent;
  const timings: string[] = [];

  /** The batch sequences the coordinator stored for an agent, in order. */
  const stored = (name: string): number[] => {
    const sqlite = new Database(join(coordinator.options.dataDir, "coral.db"), { readonly: true });
    try {
      return sqlite
        .prepare<[string], { sequence: number }>("SELECT sequence FROM batches WHERE agent_name = ? ORDER BY sequence")
        .all(name)
        .map((r) => r.sequence);
    } finally {
      sqlite.close();
    }
  };
  /** Batches still waiting in an agent's spool. */
  const spooled = (agent: LabAgent) => waitingBatches(join(agent.dataDir, "spool"));
  /** Every batch from 1 to the last, once: nothing lost, nothing twice. */
  const expectExactlyOnce = (sequences: number[]) => {
    expect(sequences.length).toBeGreaterThan(0);
    expect(sequences).toEqual(Array.from({ length: sequences.length }, (_, i) => i + 1));
  };
  const healthy = async (agent: LabAgent, since: number, timeoutMs = 30_000) => {
    try {
      return await watch.until(agent.name, (a) => a.status === "healthy" && a.path === "direct", since, timeoutMs);
    } catch (error) {
      throw new Error(
        `${(error as Error).message}\nagent ${agent.name}:\n${agent.timeline.slice(-25).join("\n")}\ncoordinator:\n${coordinator.log.slice(-25).join("\n")}`,
      );
    }
  };

  beforeAll(async () => {
    lab = await startMeshLab();
    const hub = lab.nat.addSite("hub", "none");
    portSite = lab.nat.addSite("office", "port-restricted");
    symSite = lab.nat.addSite("cloud", "symmetric");
    lateSite = lab.nat.addSite("branch", "port-restricted");
    coordinator = labCoordinator(lab, hub, "hub");
    await coordinator.start();
    watch.start(coordinator);
    const { invite } = await coordinator.json<{ invite: string }>("token", "create", "--uses", "5");
    web = new LabAgent(lab, portSite.hosts[0] as never, "web");
    db = new LabAgent(lab, symSite.hosts[0] as never, "db");
    for (const agent of [web, db]) {
      agent.start(invite);
      await healthy(agent, agent.startedAt);
    }
  }, 120_000);

  afterAll(async () => {
    if (timings.length > 0) process.stdout.write(`\nrecovery times:\n${timings.map((t) => `  ${t}`).join("\n")}\n`);
    await web?.stop();
    await db?.stop();
    await watch.stop();
    await coordinator?.stop();
    await lab?.destroy();
  }, 60_000);

  it("a NAT router that reboots: the tunnel comes back within 30 s", async () => {
    const rebooted = Date.now();
    symSite.reboot();
    // The old mapping is gone; the agent's next packets make a new one and the hub follows it.
    const deadline = rebooted + 30_000;
    while (!db.ping() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const back = Date.now() - rebooted;
    expect(back).toBeLessThan(30_000);
    // Heartbeats flow again (the agent may never have looked unhealthy: it recovers fast).
    await new Promise((r) => setTimeout(r, 2_000));
    expect(watch.current(db.name)).toMatchObject({ status: "healthy", path: "direct" });
    timings.push(`NAT router reboot (symmetric): ping through the tunnel again after ${back} ms`);
  }, 60_000);

  it("discovery down: the mesh works on, a new join fails plainly, and succeeds once discovery is back", async () => {
    const { invite } = await coordinator.json<{ invite: string }>("token", "create");
    await lab.stopDiscovery();
    try {
      await new Promise((r) => setTimeout(r, 3_000));
      expect(web.ping()).toBe(true);
      expect(db.ping()).toBe(true);
      expect((await coordinator.json<{ agents: Array<{ name: string; status: string }> }>("status")).agents).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ name: "web", status: "healthy" }),
          expect.objectContaining({ name: "db", status: "healthy" }),
        ]),
      );
      const late = new LabAgent(lab, lateSite.hosts[0] as never, "late");
      const child = late.start(invite);
      const code = await new Promise<number | null>((r) => child.once("exit", r));
      expect(code).toBe(1);
      expect(late.log.at(-1)).toMatch(
        /^coral-agent: Cannot reach discovery at http:\/\/198\.51\.100\.1:8787: .+\. Check the URL and the network\.$/,
      );
    } finally {
      await lab.startDiscovery();
    }
    const late = new LabAgent(lab, lateSite.hosts[0] as never, "late");
    late.start(invite);
    try {
      await healthy(late, late.startedAt);
    } finally {
      await late.stop();
    }
  }, 120_000);

  it("a coordinator restart: agents healthy again within 30 s, every report stored once", async () => {
    await coordinator.stop();
    await new Promise((r) => setTimeout(r, 2_000));
    const restarted = Date.now();
    await coordinator.start();
    await Promise.all([web, db].map((agent) => healthy(agent, restarted)));
    const took = Date.now() - restarted;
    expect(took).toBeLessThan(30_000);
    timings.push(`coordinator restart: both agents healthy after ${took} ms`);
    // What the agents spooled meanwhile is delivered; then nothing waits and nothing repeats.
    for (const agent of [web, db]) {
      const deadline = Date.now() + 30_000;
      while (spooled(agent) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(spooled(agent)).toBe(0);
      expectExactlyOnce(stored(agent.name));
    }
  }, 120_000);

  it("an agent cut off for a minute: unhealthy, then offline, then healthy; its spooled reports arrive once", async () => {
    const router = portSite.router as string;
    lab.nat.exec(router, ["nft", "add", "table", "ip", "cut"]);
    lab.nat.exec(router, ["nft", "add", "chain", "ip", "cut", "f", "{ type filter hook forward priority -10; policy drop; }"]);
    const cut = Date.now();
    try {
      await watch.until(web.name, (a) => a.status === "unhealthy", cut, 15_000);
      await watch.until(web.name, (a) => a.status === "offline", cut, 30_000);
      await new Promise((r) => setTimeout(r, Math.max(0, cut + 60_000 - Date.now())));
      expect(spooled(web)).toBeGreaterThan(0); // collects went on; their batches wait
    } finally {
      lab.nat.exec(router, ["nft", "delete", "table", "ip", "cut"]);
    }
    const restored = Date.now();
    await healthy(web, restored, 60_000);
    timings.push(`agent cut off for 60 s: healthy ${Date.now() - restored} ms after the cable was back`);
    const deadline = Date.now() + 30_000;
    while (spooled(web) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(spooled(web)).toBe(0);
    expectExactlyOnce(stored(web.name));
  }, 180_000);

  it("coral agents remove: the peer is dropped and its reconnection refused", async () => {
    const removed = await coordinator.cli("agents", "remove", db.name);
    expect(removed.code).toBe(0);
    expect((await coordinator.json<Array<{ name: string }>>("agents")).map((a) => a.name)).not.toContain(db.name);
    expect(db.ping()).toBe(false);
    // The agent keeps trying; the hub does not take it back.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(db.ping()).toBe(false);
    expect((await coordinator.json<Array<{ name: string }>>("agents")).map((a) => a.name)).not.toContain(db.name);
    expect(web.ping()).toBe(true);
  }, 60_000);
});
