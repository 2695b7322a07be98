/**
 * What an agent behind a NAT says when its public coordinator stops answering, and what a
 * removed agent hears: `coral agents remove` is told to the agent (through the coordinator's
 * record at discovery, since its tunnel is gone), the agent stops instead of retrying, and a
 * new invite replaces its membership, keeping the old one if that join fails.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { LabCoordinator } from "@coral-mesh/coordinator/testing";
import { labSkipReason, missingForNatLab } from "@coral-mesh/wireguard/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthWatch, LabAgent, labCoordinator, type MeshLab, startMeshLab } from "../src/mesh.js";

const skip = missingForNatLab() ? labSkipReason("the membership tests") !== null : false;

describe.skipIf(skip)("an agent behind a NAT, its public coordinator, and its membership", () => {
  let lab: MeshLab;
  let coordinator: LabCoordinator;
  const watch = new HealthWatch();
  let web: LabAgent;
  const exited = (agent: LabAgent) =>
    new Promise<number | null>((resolve) => {
      const child = agent.child;
      if (!child || child.exitCode !== null) resolve(child?.exitCode ?? null);
      else child.once("exit", (code) => resolve(code));
    });
  const healthy = async (agent: LabAgent, since: number, timeoutMs = 30_000) => {
    try {
      return await watch.until(agent.name, (a) => a.status === "healthy" && a.path === "direct", since, timeoutMs);
    } catch (error) {
      throw new Error(
        `${(error as Error).message}\nagent:\n${agent.timeline.slice(-25).join("\n")}\ncoordinator:\n${coordinator.log.slice(-25).join("\n")}`,
      );
    }
  };
  const meshFile = () => join(web.dataDir, "mesh.json");

  beforeAll(async () => {
    lab = await startMeshLab();
    const hub = lab.nat.addSite("hub", "none");
    const office = lab.nat.addSite("office", "port-restricted");
    coordinator = labCoordinator(lab, hub, "hub");
    await coordinator.start();
    watch.start(coordinator);
    const { invite } = await coordinator.json<{ invite: string }>("token", "create");
    web = new LabAgent(lab, office.hosts[0] as never, "web");
    web.start(invite);
    await healthy(web, web.startedAt);
  }, 120_000);

  afterAll(async () => {
    await web?.stop();
    await watch.stop();
    await coordinator?.stop();
    await lab?.destroy();
  }, 60_000);

  it("says the coordinator does not answer when it stops, not that a relay is needed", async () => {
    await coordinator.stop();
    try {
      // Tried directly and through the relay, which the stopped coordinator is not on either.
      await web.waitForLog(
        /the coordinator does not answer: no handshake through \S+ nor the relay at \S+ \(this agent has reached it before, so NATs are not the cause\)/,
        90_000,
      );
      expect(web.log.join("\n")).not.toMatch(/needs the relay|no direct path|no path to the coordinator/);
    } finally {
      await coordinator.start();
    }
    await healthy(web, Date.now(), 60_000);
  }, 180_000);

  it("a removed agent is told so and stops; a new invite replaces its membership, and a failed join keeps the old one", async () => {
    const before = readFileSync(meshFile(), "utf8");
    const removed = await coordinator.cli("agents", "remove", web.name);
    expect(removed.code).toBe(0);
    expect(coordinator.log.join("\n")).toMatch(/removed agent web \(100\.64\.0\.\d+\): its peer is gone/);

    // The running agent hears it (its tunnel is gone: through the record at discovery) and stops.
    const code = await Promise.race([exited(web), new Promise((r) => setTimeout(() => r("still running"), 90_000))]);
    expect(code, web.timeline.slice(-15).join("\n")).toBe(1);
    const told =
      /^coral-agent: This agent \(web\) was removed from mesh [a-z2-7]{32} with `coral agents remove web`, and its coordinator refuses it\. To bring it back, create an invite on the coordinator \(`coral token create`\) and start the agent with --join INVITE/;
    expect(web.log.at(-1)).toMatch(told);
    expect(web.log.join("\n")).not.toMatch(/needs the relay|no direct path|no path to the coordinator/);

    // Started again as it was, it says the same and stops, instead of retrying for ever.
    web.start();
    expect(await exited(web)).toBe(1);
    expect(web.log.at(-1)).toMatch(told);

    // A join that fails (a revoked invite) leaves the membership as it was.
    const revoked = await coordinator.json<{ id: string; invite: string }>("token", "create");
    expect((await coordinator.cli("token", "revoke", revoked.id)).code).toBe(0);
    web.start(revoked.invite);
    expect(await exited(web)).toBe(1);
    expect(web.log.at(-1)).toMatch(/^coral-agent: .*revoked/);
    expect(readFileSync(meshFile(), "utf8")).toBe(before);

    // A new invite replaces it: the agent is back, and the old membership is kept aside.
    const fresh = await coordinator.json<{ id: string; invite: string }>("token", "create");
    web.start(fresh.invite);
    await healthy(web, web.startedAt, 60_000);
    expect(JSON.parse(readFileSync(meshFile(), "utf8"))).toMatchObject({ name: "web", tokenId: fresh.id });
    expect(existsSync(join(web.dataDir, "mesh.previous.json"))).toBe(true);
    expect(readFileSync(join(web.dataDir, "mesh.previous.json"), "utf8")).toBe(before);
  }, 300_000);
});
