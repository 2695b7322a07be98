/**
 * The relay as an agent lives with it, between two symmetric NATs (no direct path): the first
 * join through the relay in the lab's discovery Worker, the relay dropped and back (the Worker
 * stopped and started again), and a direct path that appears later (the coordinator's router
 * forwards its WireGuard port), which the agent moves to by itself. Through all of it every
 * batch the agent made is stored by the coordinator exactly once.
 */
import { join } from "node:path";
import { waitingBatches } from "@coral-mesh/agent";
import type { LabCoordinator } from "@coral-mesh/coordinator/testing";
import { labSkipReason, missingForNatLab, type Site } from "@coral-mesh/wireguard/testing";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthWatch, LabAgent, labCoordinator, type MeshLab, startMeshLab } from "../src/mesh.js";

const skip = missingForNatLab() ? labSkipReason("the relay tests") !== null : false;

describe.skipIf(skip)("the relay between NATs that defeat a direct path", () => {
  let lab: MeshLab;
  let hubSite: Site;
  let coordinator: LabCoordinator;
  const watch = new HealthWatch();
  let agent: LabAgent;
  const timings: string[] = [];

  /** The batch sequences the coordinator stored for the agent, in order. */
  const stored = (): number[] => {
    const sqlite = new Database(join(coordinator.options.dataDir, "coral.db"), { readonly: true });
    try {
      return sqlite
        .prepare<[string], { sequence: number }>("SELECT sequence FROM batches WHERE agent_name = ? ORDER BY sequence")
        .all(agent.name)
        .map((r) => r.sequence);
    } finally {
      sqlite.close();
    }
  };
  const spooled = () => waitingBatches(join(agent.dataDir, "spool"));
  /** The spool drains, and every batch from 1 to the last is stored once: nothing lost, nothing twice. */
  const deliveredOnce = async () => {
    const deadline = Date.now() + 30_000;
    while (spooled() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(spooled()).toBe(0);
    const sequences = stored();
    expect(sequences.length).toBeGreaterThan(0);
    expect(sequences).toEqual(Array.from({ length: sequences.length }, (_, i) => i + 1));
  };
  const reached = async (path: "relay" | "direct", since: number, timeoutMs: number) => {
    try {
      return await watch.healthyAt(agent.name, (a) => a.status === "healthy" && a.path === path, since, timeoutMs);
    } catch (error) {
      throw new Error(
        `${(error as Error).message}\nagent:\n${agent.timeline.slice(-30).join("\n")}\ncoordinator:\n${coordinator.log.slice(-30).join("\n")}`,
      );
    }
  };

  beforeAll(async () => {
    lab = await startMeshLab();
    hubSite = lab.nat.addSite("home", "symmetric");
    const agentSite = lab.nat.addSite("mobile", "symmetric");
    coordinator = labCoordinator(lab, hubSite, "hub");
    await coordinator.start();
    watch.start(coordinator);
    agent = new LabAgent(lab, agentSite.hosts[0] as never, "phone");
  }, 120_000);

  afterAll(async () => {
    if (timings.length > 0) process.stdout.write(`\nrelay timings:\n${timings.map((t) => `  ${t}`).join("\n")}\n`);
    await agent?.stop();
    await watch.stop();
    await coordinator?.stop();
    await lab?.destroy();
  }, 60_000);

  it("joins through the relay: healthy, a ping over the mesh, and status and the log say so", async () => {
    const { invite } = await coordinator.json<{ invite: string }>("token", "create");
    agent.start(invite);
    const at = await reached("relay", agent.startedAt, 30_000);
    timings.push(`first join through the relay: healthy ${at - agent.startedAt} ms after the agent started`);
    expect(agent.ping(), "a ping to the hub through the relayed tunnel").toBe(true);

    const status = await coordinator.json<{
      relay: { host: string; state: string; agents: number; datagrams: number };
      agents: Array<{ name: string; path: string; relay: string | null; endpoint: string | null }>;
    }>("status");
    const host = new URL(lab.discovery.url).host;
    expect(status.relay).toEqual({ host, state: "open", agents: 1, datagrams: expect.any(Number) });
    expect(status.relay.datagrams).toBeGreaterThan(0);
    expect(status.agents.find((a) => a.name === agent.name)).toMatchObject({ path: "relay", relay: host, endpoint: `relay ${host}` });
    const table = await coordinator.cli("status");
    expect(table.out).toMatch(
      new RegExp(`Relay +${host.replace(/\./g, "\\.")} +connected, 1 agent\\(s\\) relayed, \\d+ datagram\\(s\\) carried`),
    );
    expect(table.out).toMatch(/phone .* relay +relay 198\.51\.100\.1:8787/);
    // Why, in the coordinator's words and the agent's.
    expect(coordinator.log.join("\n")).toMatch(
      /agent phone \(100\.64\.0\.\d+\) reaches this hub through the relay at \S+: no direct path came up/,
    );
    expect(agent.log.join("\n")).toMatch(/nothing came from the coordinator through .* in \d+ ms\n.*trying the relay at/);
    // The hub keeps the address it saw the agent at directly, not the relay's socket.
    const events = await coordinator.json<Array<{ kind: string; attributes: Record<string, string> }>>(
      "events",
      "--kind",
      "agent.path_changed",
    );
    expect(events.some((e) => e.attributes.to === `relay ${host}`)).toBe(true);
  }, 60_000);

  it("costs a steady number of messages while relayed (what the Worker bills)", async () => {
    type Relay = { relay: { datagrams: number } };
    const before = (await coordinator.json<Relay>("status")).relay.datagrams;
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 30_000));
    const after = (await coordinator.json<Relay>("status")).relay.datagrams;
    const perMinute = ((after - before) * 60_000) / (Date.now() - started);
    timings.push(
      `relayed agent at the lab's 1 s heartbeat, passive collector every 10 s: ${Math.round(perMinute)} relay messages a minute (both ways)`,
    );
    // Heartbeats and reports, not a flood: well inside the mesh's budget of 30,000 a minute.
    expect(perMinute).toBeGreaterThan(0);
    expect(perMinute).toBeLessThan(3_000);
  }, 60_000);

  it("the relay dropped and back: the tunnel comes back through it, every report stored once", async () => {
    // The passive collector reports every 10 s: some batches wait in the spool meanwhile.
    const dropped = Date.now();
    await lab.stopDiscovery();
    try {
      await watch.until(agent.name, (a) => a.status !== "healthy", dropped, 30_000);
      while (spooled() === 0 && Date.now() - dropped < 40_000) await new Promise((r) => setTimeout(r, 500));
      expect(spooled(), "batches wait in the spool while the relay is away").toBeGreaterThan(0);
    } finally {
      await lab.startDiscovery();
    }
    const back = Date.now();
    // Both ends dial again by themselves (backoff up to 30 s), and WireGuard shakes hands anew.
    const at = await reached("relay", back, 60_000);
    timings.push(`relay back: healthy through it again ${at - back} ms after the Worker was`);
    await deliveredOnce();
  }, 150_000);

  it("a direct path appears: the agent moves to it by itself, every report stored once", async () => {
    const opened = Date.now();
    hubSite.forwardUdp(51820);
    const at = await reached("direct", opened, 90_000);
    timings.push(`direct path appeared: the agent was direct ${at - opened} ms after the port was forwarded`);
    if (process.env.CORAL_E2E_VERBOSE) process.stdout.write(`${agent.timeline.join("\n")}\n`);
    expect(agent.log.join("\n")).toMatch(/a direct path to the coordinator came up, through 198\.51\.100\.\d+:51820: leaving the relay/);
    expect(agent.ping(), "a ping to the hub over the direct tunnel").toBe(true);
    await deliveredOnce();
  }, 150_000);
});
