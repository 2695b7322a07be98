/**
 * coral-agent as users run it, in a lab: discovery and `coral coordinator start` on host
 * A, the agent on host B loading a third-party collector by package name and a broken
 * plugin by path. Checks the join, health in `coral status`, and that every tick the
 * collector counted reaches the coordinator exactly once across kill -9 and a coordinator
 * that is away for a while.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { AgentView } from "@coral-mesh/coordinator";
import { LabCoordinator, spawnInNamespace, stopChild, waitForLine } from "@coral-mesh/coordinator/testing";
import { type LocalDiscovery, startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import { createLab, type Lab, labSkipReason } from "@coral-mesh/wireguard/testing";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const agentDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const skip = labSkipReason("the agent in a network-namespace lab");

describe.skipIf(skip)("coral-agent, in a lab", () => {
  let lab: Lab;
  let discovery: LocalDiscovery;
  let coordinator: LabCoordinator;
  let dir: string;
  let agent: { child: ChildProcess; log: string[] } | undefined;

  async function startAgent(...extra: string[]): Promise<void> {
    const child = spawnInNamespace(
      lab.b,
      "src/cli.ts",
      [
        "--plugins=coral-plugin-sample,./test/fixtures/broken-plugin.js",
        "--data-dir",
        join(dir, "agent"),
        "--interface",
        `${lab.prefix}ag`,
        "--name",
        "web-1",
        ...extra,
      ],
      agentDir,
    );
    const waiting = waitForLine(child, / running as web-1 /, "the agent");
    agent = { child, log: waiting.log };
    await waiting.ready;
  }

  const agents = () => coordinator.json<AgentView[]>("agents");
  const ticks = async () =>
    (await coordinator.json<Array<{ attributes: { n: string } }>>("events", "--kind", "sample.tick", "--limit", "1000"))
      .map((e) => Number(e.attributes.n))
      .sort((a, b) => a - b);
  const until = async (what: string, condition: () => Promise<boolean>, ms = 30_000) => {
    const deadline = Date.now() + ms;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  /** Every tick from 1 to the highest, each once. */
  const exactlyOnce = (values: number[]) => values.every((n, i) => n === i + 1);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "coral-agent-lab-"));
    lab = createLab();
    process.once("exit", () => lab.destroy());
    discovery = await startLocalDiscovery({ netns: lab.a, ip: lab.addressA, port: 8787 });
    coordinator = new LabCoordinator({
      ns: lab.a,
      dataDir: join(dir, "coordinator"),
      interfaceName: `${lab.prefix}hub`,
      endpoint: `${lab.addressA}:51820`,
      discoveryUrl: discovery.url,
    });
    await coordinator.start();
  }, 120_000);

  afterAll(async () => {
    await stopChild(agent?.child);
    await coordinator?.stop();
    await discovery?.stop();
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("joins from an invite, showing each step, and reports its plugins' states", async () => {
    const { invite } = await coordinator.json<{ invite: string }>("token", "create");
    await startAgent("--join", invite);
    const log = agent?.log.join("\n") ?? "";
    for (const step of [
      "verifying the coordinator's record",
      "waiting for the coordinator's answer",
      "accepted as web-1 with mesh address 100.64.0.2",
      `connecting to the coordinator at ${lab.addressA}:51820`,
      "tunnel up through",
      "registered with the coordinator",
    ]) {
      expect(log).toContain(step);
    }
    await until("the broken plugin to show as broken", async () => {
      const [web] = await agents();
      return web?.plugins.find((p) => p.name === "broken")?.state !== "running" && web?.plugins.length === 2;
    });
    const [web] = await agents();
    expect(web).toMatchObject({ name: "web-1", meshIp: "100.64.0.2", status: "degraded", path: "direct" });
    expect(web?.plugins.find((p) => p.name === "sample")).toMatchObject({ state: "running" });
    expect(web?.plugins.find((p) => p.name === "broken")?.lastError).toMatch(
      /thrown from collect|rejected later|did not finish|still running|ignored its abort signal/,
    );
    // The broken plugin never stops the sample collector.
    await until("ticks", async () => (await ticks()).length >= 3);
    expect(exactlyOnce(await ticks())).toBe(true);
  }, 90_000);

  it("loses and duplicates nothing across kill -9, and restarts without joining again", async () => {
    await new Promise((r) => setTimeout(r, 1_500 + Math.random() * 1_000));
    agent?.child.kill("SIGKILL");
    await new Promise((r) => agent?.child.once("exit", r));
    // wireguard-go outlives a killed agent, with its interface; the next start takes it over.
    expect(lab.exec(lab.b, ["ip", "link", "show", `${lab.prefix}ag`]).ok).toBe(true);
    const before = (await ticks()).at(-1) ?? 0;
    await startAgent();
    const log = agent?.log.join("\n") ?? "";
    expect(log).toContain(`removed ${lab.prefix}ag, left behind by an earlier run with the same key`);
    expect(log).not.toContain("waiting for the coordinator's answer");
    await until("ticks after the restart", async () => ((await ticks()).at(-1) ?? 0) >= before + 3);
    expect(exactlyOnce(await ticks())).toBe(true);
  }, 90_000);

  it("spools while the coordinator is away for a minute and delivers everything once when it is back", async () => {
    expect(await coordinator.stop()).toBe(0);
    await new Promise((r) => setTimeout(r, 60_000));
    coordinator = new LabCoordinator({ ...coordinator.options, discoveryUrl: undefined });
    await coordinator.start();
    const away = agent?.log.filter((l) => l.includes("sending reports failed")) ?? [];
    expect(away.length, agent?.log.join("\n")).toBeGreaterThan(0);
    await until("the spooled ticks", async () => (await ticks()).length >= 60, 45_000);
    expect(exactlyOnce(await ticks())).toBe(true);
    await until("healthy again", async () => (await agents())[0]?.path === "direct");
  }, 180_000);

  it("refuses a second agent on the same data directory", async () => {
    const second = spawnInNamespace(
      lab.b,
      "src/cli.ts",
      ["--plugins=coral-plugin-sample", "--data-dir", join(dir, "agent"), "--interface", `${lab.prefix}a2`],
      agentDir,
    );
    const waiting = waitForLine(second, /^coral-agent: /, "the second agent");
    waiting.ready.catch(() => {});
    await new Promise((r) => second.once("close", r));
    expect(waiting.log.at(-1)).toMatch(
      /^coral-agent: An agent \(pid \d+\) already runs with .+; stop it first, or use another --data-dir\.$/,
    );
  }, 30_000);

  it("finds the coordinator through discovery when it moved while the agent was off", async () => {
    expect(await stopChild(agent?.child)).toBe(0);
    expect(await coordinator.stop()).toBe(0);
    // The hub forgets where the agent was (as when the agent's NAT mapping expired), so it
    // cannot reach out first: the agent has to find the hub's new port itself.
    const store = new Database(join(coordinator.options.dataDir, "coral.db"));
    store.prepare("UPDATE agents SET endpoint = NULL").run();
    store.close();
    coordinator = new LabCoordinator({
      ...coordinator.options,
      discoveryUrl: undefined,
      endpoint: `${lab.addressA}:51830`,
      extraArgs: ["--listen-port", "51830"],
    });
    await coordinator.start();
    const before = (await ticks()).at(-1) ?? 0;
    await startAgent();
    const log = agent?.log.join("\n") ?? "";
    // Nothing from the old port: before the relay, the agent asks discovery, and goes direct to the new one.
    expect(log).toMatch(new RegExp(`nothing came from the coordinator through ${lab.addressA}:51820 in \\d+ ms`));
    expect(log).toContain(`discovery has the coordinator at ${lab.addressA}:51830 now; trying there`);
    expect(log).toContain(`tunnel up through ${lab.addressA}:51830`);
    expect(log).not.toContain("relay");
    expect(JSON.parse(readFileSync(join(dir, "agent", "mesh.json"), "utf8")).answer.endpoints).toEqual([`${lab.addressA}:51830`]);
    await until("ticks through the new port", async () => ((await ticks()).at(-1) ?? 0) >= before + 3);
    expect(exactlyOnce(await ticks())).toBe(true);
  }, 120_000);

  /** Starts the enrolled agent web-1 again, in its namespace. */
  const restartWeb1 = () => {
    const child = spawnInNamespace(
      lab.b,
      "src/cli.ts",
      ["--plugins=coral-plugin-sample", "--data-dir", join(dir, "agent"), "--interface", `${lab.prefix}ag`, "--name", "web-1"],
      agentDir,
    );
    const running = waitForLine(child, / running as web-1 /, "the agent");
    agent = { child, log: running.log };
    return running;
  };
  const nftInAgentNs = (...args: string[]) => expect(lab.exec(lab.b, ["nft", ...args]).ok).toBe(true);

  it("shakes hands again when the hub loses the session it has just made", async () => {
    expect(await stopChild(agent?.child)).toBe(0);
    // Until the hub has lost it, the handshake gets through and TCP does not.
    nftInAgentNs("add", "table", "ip", "hold");
    nftInAgentNs("add", "chain", "ip", "hold", "out", "{ type filter hook output priority 0; }");
    nftInAgentNs("add", "rule", "ip", "hold", "out", "ip", "daddr", "100.64.0.1", "tcp", "flags", "syn", "drop");
    const running = restartWeb1();
    const deadline = Date.now() + 15_000;
    while (!running.log.some((l) => l.includes("tunnel up through")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    // The hub replaces its peer entry for the agent, as its punch does: the session the agent
    // holds is one the hub no longer has, and WireGuard alone would mend that in 15 s.
    const hub = `${lab.prefix}hub`;
    const key = lab.exec(lab.a, ["wg", "show", hub, "peers"]).output.trim();
    expect(lab.exec(lab.a, ["wg", "set", hub, "peer", key, "remove"]).ok).toBe(true);
    expect(lab.exec(lab.a, ["wg", "set", hub, "peer", key, "allowed-ips", "100.64.0.2/32"]).ok).toBe(true);
    nftInAgentNs("delete", "table", "ip", "hold");
    const lost = Date.now();
    await running.ready;
    expect(Date.now() - lost, running.log.join("\n")).toBeLessThan(3_000);
    expect(running.log.join("\n")).toContain("of the handshake; shaking hands again");
  }, 60_000);

  it("starts a handshake itself when the hub's packets arrive but none comes of them", async () => {
    expect(await stopChild(agent?.child)).toBe(0);
    // Neither the agent's handshake initiations (WireGuard message type 1) nor its responses
    // (type 2) get out, until the hub's packets have arrived: one handshake message lost each way.
    nftInAgentNs("add", "table", "ip", "stall");
    nftInAgentNs("add", "chain", "ip", "stall", "out", "{ type filter hook output priority 0; }");
    const hubPort = lab.exec(lab.a, ["wg", "show", `${lab.prefix}hub`, "listen-port"]).output.trim();
    for (const type of ["1", "2"]) nftInAgentNs("add", "rule", "ip", "stall", "out", "udp", "dport", hubPort, "@th,64,8", type, "drop");
    const running = restartWeb1();
    const wait = async (what: string, done: () => boolean) => {
      const deadline = Date.now() + 15_000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${running.log.join("\n")}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await wait("the agent to connect", () => running.log.some((l) => l.includes("connecting to the coordinator")));
    // The hub starts a handshake toward the agent, as its punch does.
    const hub = `${lab.prefix}hub`;
    expect(running.log.join("\n")).not.toContain("tunnel up");
    const key = lab.exec(lab.a, ["wg", "show", hub, "peers"]).output.trim();
    const port = lab.exec(lab.b, ["wg", "show", `${lab.prefix}ag`, "listen-port"]).output.trim();
    expect(lab.exec(lab.a, ["wg", "set", hub, "peer", key, "remove"]).ok).toBe(true);
    const endpoint = `${lab.addressB}:${port}`;
    expect(lab.exec(lab.a, ["wg", "set", hub, "peer", key, "allowed-ips", "100.64.0.2/32", "endpoint", endpoint]).ok).toBe(true);
    lab.exec(lab.a, ["ping", "-c", "1", "-W", "1", "100.64.0.2"]);
    const received = () =>
      Number(
        lab
          .exec(lab.b, ["wg", "show", `${lab.prefix}ag`, "transfer"])
          .output.trim()
          .split(/\s+/)[1] ?? 0,
      ) > 0;
    await wait("the hub's handshake to arrive", received);
    nftInAgentNs("delete", "table", "ip", "stall");
    const open = Date.now();
    await wait("the tunnel", () => running.log.some((l) => l.includes("tunnel up through")));
    // WireGuard alone would try again 5 s after the lost message.
    expect(Date.now() - open, running.log.join("\n")).toBeLessThan(2_500);
    expect(running.log.join("\n"), `${Date.now() - open} ms after the drop ended:\n${running.log.join("\n")}`).toContain(
      "no handshake came of them; starting one from here",
    );
    await running.ready;
  }, 60_000);

  it("stops on SIGTERM with the interface removed", async () => {
    expect(await stopChild(agent?.child)).toBe(0);
    expect(agent?.log.at(-1)).toMatch(/stopped; \d+ batch\(es\) wait in the spool/);
    expect(lab.exec(lab.b, ["ip", "link", "show", `${lab.prefix}ag`]).ok).toBe(false);
  }, 30_000);
});
