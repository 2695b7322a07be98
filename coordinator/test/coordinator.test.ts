/**
 * `coral coordinator start` as users run it, in a two-host lab of network namespaces:
 * discovery (the Worker in workerd) and the coordinator on host A, peers on host B that
 * speak the real join protocol, WireGuard (wireguard-go) and gRPC over the tunnel. The
 * test drives everything through the `coral` CLI.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type LocalDiscovery, startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import { decodeInvite, type EventView, encodeInvite, type JoinAnswerPayload } from "@coral-mesh/sdk-proto";
import { createLab, type Lab, labSkipReason } from "@coral-mesh/wireguard/testing";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentView, StatusView } from "../src/api/app.js";
import { LabCoordinator, spawnInNamespace } from "../src/testing.js";

const skip = labSkipReason("coordinator in a network-namespace lab");

/** What the peer answers, by command. */
interface PeerResult {
  answer?: JoinAnswerPayload;
  publicKey?: string;
  ok?: boolean;
  ackedSequences?: number[];
  lastAckedSequence?: number;
  heartbeatIntervalMs?: number;
}

/** A peer process (test/fixtures/peer.ts) driven one JSON line at a time. */
class Peer {
  private readonly pending: Array<(line: string) => void> = [];
  private readonly child: ChildProcess;

  constructor(ns: string) {
    this.child = spawnInNamespace(ns, "test/fixtures/peer.ts", []);
    this.child.stderr?.on("data", (chunk: Buffer) => process.stderr.write(`[peer] ${chunk}`));
    if (!this.child.stdout) throw new Error("no stdout");
    createInterface({ input: this.child.stdout }).on("line", (line) => this.pending.shift()?.(line));
  }

  async send(command: Record<string, unknown>): Promise<{ ok: boolean; result?: PeerResult; code?: number | string; message?: string }> {
    const line = new Promise<string>((r) => this.pending.push(r));
    this.child.stdin?.write(`${JSON.stringify(command)}\n`);
    return JSON.parse(await line);
  }

  async must(command: Record<string, unknown>): Promise<PeerResult> {
    const reply = await this.send(command);
    if (!reply.ok || !reply.result) throw new Error(`peer ${String(command.op)}: ${reply.message}`);
    return reply.result;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

describe.skipIf(skip)("coral coordinator start, in a lab", () => {
  let lab: Lab;
  let discovery: LocalDiscovery;
  let dir: string;
  let dataDir: string;
  let hub: string;
  let coordinator: LabCoordinator | undefined;
  const peers: Peer[] = [];
  let webKey = "";

  const coral = (...args: string[]) => (coordinator as LabCoordinator).cli(...args);
  const coralJson = <T>(...args: string[]) => (coordinator as LabCoordinator).json<T>(...args);
  const stopCoordinator = () => (coordinator as LabCoordinator).stop();

  async function invite(...args: string[]): Promise<{ id: string; invite: string }> {
    return coralJson<{ id: string; invite: string }>("token", "create", ...args);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "coral-coordinator-"));
    dataDir = join(dir, "data");
    lab = createLab();
    process.once("exit", () => lab.destroy());
    hub = `${lab.prefix}hub`;
    discovery = await startLocalDiscovery({ netns: lab.a, ip: lab.addressA, port: 8787 });
    coordinator = new LabCoordinator({
      ns: lab.a,
      dataDir,
      interfaceName: hub,
      endpoint: `${lab.addressA}:51820`,
      discoveryUrl: discovery.url,
    });
    await coordinator.start();
  }, 120_000);

  afterAll(async () => {
    for (const peer of peers) await peer.close();
    await coordinator?.stop();
    await discovery?.stop();
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("creates its keys and store readable by their owner only, registers, and reports the mesh", async () => {
    for (const file of ["signing.key", "wireguard.key", "coral.db", "api.json"]) {
      expect((statSync(join(dataDir, file)).mode & 0o777).toString(8), file).toBe("600");
    }
    const status = await coralJson<StatusView>("status");
    expect(status).toMatchObject({
      mesh: { address: "100.64.0.1", listenPort: 51820 },
      discovery: { url: discovery.url, state: "registered", observedAddress: lab.addressA },
      agents: [],
    });
    expect(coordinator?.log.join("\n")).toContain(`created a new mesh in ${dataDir}`);
    // One coordinator per data directory.
    const second = await coral("coordinator", "start", "--interface", `${lab.prefix}h2`);
    expect(second.code).toBe(1);
    expect(second.err).toMatch(/^coral: \[coordinator_running\] A coordinator \(pid \d+\) already runs with/);
  }, 30_000);

  it("refuses a second coordinator on the host, naming what holds its interface or its UDP port, and creates nothing", async () => {
    const otherDir = join(dir, "second");
    const second = (interfaceName: string) =>
      new LabCoordinator({ ns: lab.a, dataDir: otherDir, interfaceName }).cli(
        "coordinator",
        "start",
        "--interface",
        interfaceName,
        "--discovery",
        discovery.url,
      );
    // The same interface name: the running coordinator's wireguard-go serves it. Never a hint to delete it.
    const sameName = await second(hub);
    expect(sameName.code).toBe(1);
    expect(sameName.err).toMatch(
      new RegExp(
        `^coral: \\[interface_in_use\\] The WireGuard interface ${hub} is in use: it is served by \`wireguard-go -f ${hub}\` \\(pid \\d+\\), started by \`.*coordinator start.*\` \\(pid \\d+\\), so another coordinator`,
      ),
    );
    expect(sameName.err).not.toContain("ip link del");
    expect(lab.exec(lab.a, ["ip", "link", "show", hub]).ok).toBe(true);
    // Another name, the same UDP port.
    const samePort = await second(`${lab.prefix}h3`);
    expect(samePort.code).toBe(1);
    expect(samePort.err).toMatch(
      /^coral: \[[a-z_]+\] UDP port 51820 is already in use on this host: it is held by `wireguard-go -f \S+` \(pid \d+\)/,
    );
    expect(samePort.err).toContain("another --listen-port");
    expect(samePort.err).not.toContain("errno");
    expect(lab.exec(lab.a, ["ip", "link", "show", `${lab.prefix}h3`]).ok).toBe(false);
    // Refused before anything was made: no data directory, no keys.
    expect(existsSync(otherDir)).toBe(false);
  }, 30_000);

  it("enrolls a peer from an invite: tunnel, registration, and healthy in `coral status` with a direct path", async () => {
    const { invite: text } = await invite("--name", "lab", "--uses", "1");
    expect((await decodeInvite(text)).meshId).toBe((await coralJson<StatusView>("status")).mesh.id);
    const peer = new Peer(lab.b);
    peers.push(peer);
    const joined = await peer.must({ op: "join", invite: text, name: "web-1" });
    webKey = joined.publicKey ?? "";
    expect(joined.answer).toMatchObject({
      ok: true,
      meshIp: "100.64.0.2",
      coordinatorMeshIp: "100.64.0.1",
      endpoints: [`${lab.addressA}:51820`],
    });
    await peer.must({ op: "up", interface: `${lab.prefix}p1` });
    expect((await peer.must({ op: "ping" })).ok).toBe(true);
    expect(await peer.must({ op: "register" })).toMatchObject({ heartbeatIntervalMs: 10_000, lastAckedSequence: 0 });

    const status = await coralJson<StatusView>("status");
    expect(status.agents).toEqual([
      expect.objectContaining({
        name: "web-1",
        meshIp: "100.64.0.2",
        status: "healthy",
        path: "direct",
        endpoint: expect.stringMatching(new RegExp(`^${lab.addressB.replaceAll(".", "\\.")}:\\d+$`)),
        plugins: [{ name: "passive", state: "running", lastError: null }],
      }),
    ]);
    const table = await coral("status");
    expect(table.out).toMatch(/web-1\s+100\.64\.0\.2\s+healthy\s+\d+s ago\s+direct\s+192\.0\.2\.2:\d+\s+passive/);

    // A failed plugin shows as degraded.
    await peer.must({ op: "heartbeat", plugins: [{ name: "passive", status: 4 }] });
    expect((await coralJson<AgentView[]>("agents"))[0]).toMatchObject({
      status: "degraded",
      plugins: [{ name: "passive", state: "failed" }],
    });
    await peer.must({ op: "heartbeat" });
  }, 60_000);

  it("serves its tools over MCP: `coral mcp` in its namespace relays to the running coordinator's /v1/mcp", async () => {
    const client = new Client({ name: "coral-test", version: "1.0.0" });
    await client.connect(
      new StdioClientTransport({
        command: "ip",
        args: ["netns", "exec", lab.a, ...(coordinator as LabCoordinator).coral, "mcp", "--data-dir", dataDir],
        cwd: join(import.meta.dirname, ".."),
        stderr: "pipe",
      }),
    );
    try {
      const result = await client.callTool({ name: "list_agents", arguments: {} });
      const content = JSON.parse((result.content as Array<{ text: string }>)[0]?.text ?? "{}") as {
        agents: Array<{ name: string; path: string }>;
      };
      expect(content.agents).toEqual([expect.objectContaining({ name: "web-1", path: "direct" })]);
    } finally {
      await client.close();
    }
  }, 60_000);

  it("refuses used-up, revoked, expired and unknown tokens, each with its own code, spending nothing", async () => {
    const peer = new Peer(lab.b);
    peers.push(peer);
    const single = await invite("--uses", "1");
    expect((await peer.must({ op: "join", invite: single.invite, name: "db-1" })).answer).toMatchObject({ ok: true, meshIp: "100.64.0.3" });
    const refusal = async (text: string) => (await peer.must({ op: "join", invite: text, name: "db-2", newKeys: true })).answer;

    expect(await refusal(single.invite)).toMatchObject({ ok: false, code: "token_used_up" });
    const revoked = await invite();
    expect((await coral("token", "revoke", revoked.id)).code).toBe(0);
    expect(await refusal(revoked.invite)).toMatchObject({ ok: false, code: "token_revoked" });
    const expiring = await invite("--ttl", "1s");
    await new Promise((r) => setTimeout(r, 1_100));
    // Its join ticket expires with it: discovery refuses to queue the join, so it never reaches the coordinator.
    expect(await peer.send({ op: "join", invite: expiring.invite, name: "db-2", newKeys: true })).toMatchObject({
      ok: false,
      code: "join_ticket_expired",
      message: expect.stringContaining("coral token create"),
    });
    const altered = await encodeInvite({ ...(await decodeInvite((await invite()).invite)), secret: "A".repeat(43) });
    expect(await refusal(altered)).toMatchObject({
      ok: false,
      code: "token_unknown",
      message: expect.stringContaining("ask for a new invite"),
    });

    const tokens = await coralJson<Array<{ id: string; uses: number; state: string }>>("token", "list");
    expect(tokens.find((t) => t.id === single.id)).toMatchObject({ uses: 1, state: "used_up" });
    expect(tokens.find((t) => t.id === revoked.id)).toMatchObject({ uses: 0, state: "revoked" });
    expect(tokens.find((t) => t.id === expiring.id)).toMatchObject({ uses: 0, state: "expired" });
    expect((await coralJson<AgentView[]>("agents")).map((a) => a.name)).toEqual(["db-1", "web-1"]);

    const db = new Database(join(dataDir, "coral.db"), { readonly: true });
    const refused = db.prepare("SELECT details FROM audit_log WHERE action = 'join.refused' ORDER BY id").all() as Array<{
      details: string;
    }>;
    db.close();
    expect(refused.map((r) => JSON.parse(r.details).code)).toEqual(["token_used_up", "token_revoked", "token_unknown"]);
  }, 60_000);

  it("refuses a caller that claims another agent, and the hub drops packets from an address that is not the peer's", async () => {
    const peer = peers[0] as Peer;
    expect(await peer.send({ op: "heartbeat", claim: "db-1" })).toMatchObject({
      ok: false,
      code: 7, // PERMISSION_DENIED
      message: "calls from 100.64.0.2 come from agent web-1, not db-1",
    });
    // db-1's address on web-1's tunnel: WireGuard's cryptokey routing drops it at the hub.
    await peer.must({ op: "alias", address: "100.64.0.3" });
    expect(await peer.must({ op: "ping", from: "100.64.0.3", timeoutMs: 2_000 })).toEqual({ ok: false });
    expect((await peer.must({ op: "ping", from: "100.64.0.2" })).ok).toBe(true);
  }, 30_000);

  it("stores duplicate and out-of-order report batches exactly once", async () => {
    const peer = peers[0] as Peer;
    expect((await peer.must({ op: "report", sequences: [1, 2, 3] })).ackedSequences).toEqual([1, 2, 3]);
    expect((await peer.must({ op: "report", sequences: [3, 2] })).ackedSequences).toEqual([3, 2]);
    expect((await peer.must({ op: "report", sequences: [5, 4, 5] })).ackedSequences).toEqual([5, 4, 5]);
    const events = await coralJson<EventView[]>("events", "--agent", "web-1", "--kind", "process.started", "--since", "1h");
    expect(events.map((e) => e.subject.id).sort()).toEqual(["pid:1", "pid:2", "pid:3", "pid:4", "pid:5"]);
    expect(await peer.must({ op: "register" })).toMatchObject({ lastAckedSequence: 5 });
    expect((await coral("events", "--kind", "process.started")).out).toMatch(/web-1\s+process\.started\s+worker-5\s+lab-peer\s+pid=5/);
  }, 30_000);

  it("stops cleanly and starts again with keys, mesh id, addresses, tokens and events intact; the agent returns without re-joining", async () => {
    const before = await coralJson<StatusView>("status");
    const tokensBefore = await coralJson<unknown[]>("token", "list");
    expect(await stopCoordinator()).toBe(0);
    expect(coordinator?.log.at(-1)).toMatch(/ stopped$/);
    expect(lab.exec(lab.a, ["ip", "link", "show", hub]).ok).toBe(false);
    expect(existsSync(join(dataDir, "api.json"))).toBe(false);
    const down = await coral("status");
    expect(down.code).toBe(1);
    expect(down.err).toContain("No coordinator is running with data directory");

    coordinator = new LabCoordinator({ ...(coordinator as LabCoordinator).options, discoveryUrl: undefined }); // remembered from the first start
    await coordinator.start();
    expect(coordinator?.log.join("\n")).toContain("2 enrolled agent(s) restored as peers");
    const peer = peers[0] as Peer;
    // The hub remembered web-1's endpoint and shook hands with it at start: no 15 s stale-session wait.
    expect((await peer.must({ op: "ping", timeoutMs: 3_000 })).ok).toBe(true);
    await peer.must({ op: "heartbeat" });
    const after = await coralJson<StatusView>("status");
    expect(after.mesh).toEqual(before.mesh);
    expect(after.agents.map((a) => [a.name, a.meshIp])).toEqual([
      ["db-1", "100.64.0.3"],
      ["web-1", "100.64.0.2"],
    ]);
    expect(after.agents.find((a) => a.name === "web-1")).toMatchObject({ status: "healthy", path: "direct" });
    expect(await coralJson("token", "list")).toEqual(tokensBefore);
    const kept = await coralJson<EventView[]>("events", "--agent", "web-1");
    expect(kept.filter((e) => e.source !== "coordinator")).toHaveLength(5);
    // Beside what the agent reported, what the coordinator saw of it: its enrollment, its health.
    expect(kept.filter((e) => e.source === "coordinator").map((e) => e.kind)).toEqual(expect.arrayContaining(["agent.enrolled"]));
  }, 90_000);

  it("gives an agent key the same address when it joins again", async () => {
    const peer = peers[0] as Peer;
    const again = await peer.must({ op: "join", invite: (await invite()).invite, name: "web-1" });
    expect(again.answer).toMatchObject({ ok: true, meshIp: "100.64.0.2" });
  }, 30_000);

  it("`coral agents remove` drops the peer and refuses its reconnection", async () => {
    const peer = peers[0] as Peer;
    expect(lab.exec(lab.a, ["wg", "show", hub, "peers"]).output).toContain(webKey);
    const removed = await coral("agents", "remove", "web-1");
    expect(removed).toMatchObject({ code: 0, out: expect.stringContaining("Agent web-1 removed") });
    expect(lab.exec(lab.a, ["wg", "show", hub, "peers"]).output).not.toContain(webKey);
    expect((await coralJson<AgentView[]>("agents")).map((a) => a.name)).toEqual(["db-1"]);
    expect(await peer.must({ op: "ping", timeoutMs: 2_000 })).toEqual({ ok: false });
    expect((await peer.send({ op: "heartbeat" })).ok).toBe(false);
    const unknown = await coral("agents", "remove", "web-1");
    expect(unknown).toMatchObject({ code: 1, err: "coral: [agent_not_found] No agent named web-1; `coral agents` lists them.\n" });
  }, 30_000);
});
