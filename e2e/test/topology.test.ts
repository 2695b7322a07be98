/**
 * The dependency graph across hosts, as a user sees it: a client service on one agent's host
 * keeps connections open to a server service on another's, and `coral topology --json`
 * shows them as one edge between the two services — also while the client's host has
 * hundreds of other connections open (the TCP table then spans many pages of /proc/net/tcp).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LabCoordinator } from "@coral-mesh/coordinator/testing";
import type { ServiceSummary, TopologyResponse } from "@coral-mesh/sdk-proto";
import { type LabHost, labSkipReason, missingForNatLab } from "@coral-mesh/wireguard/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthWatch, LabAgent, labCoordinator, type MeshLab, startMeshLab } from "../src/mesh.js";

const skip = missingForNatLab() ? labSkipReason("the topology lab test") !== null : false;

const SERVER_PORT = 15432;
const LOCAL_PORT = 16000;
/** Connections the client host keeps open besides its calls to the server: each is two rows of its TCP table. */
const BUSY_CONNECTIONS = 300;

/** A server: listens on every address and holds what connects. */
const serverJs = `
const net = require("node:net");
const port = Number(process.argv[2]);
net.createServer((socket) => socket.on("error", () => {})).listen(port, "0.0.0.0");
`;

/**
 * A client that serves too, as a web front end does: it listens on its own port (so the
 * collector sees a service at once, not a young transient process) and keeps \`count\`
 * connections open to host:port, reconnecting any that close.
 */
const clientJs = `
const net = require("node:net");
const [host, port, count, own] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
net.createServer((socket) => socket.on("error", () => {})).listen(own, "0.0.0.0");
const open = () => net.connect(port, host).on("error", () => {}).on("close", () => setTimeout(open, 500));
for (let i = 0; i < count; i++) open();
`;

describe.skipIf(skip)("the dependency graph across hosts", () => {
  let lab: MeshLab;
  let coordinator: LabCoordinator;
  const watch = new HealthWatch();
  const agents: LabAgent[] = [];
  const processes: ChildProcess[] = [];
  let clientHost: LabHost;
  let serverHost: LabHost;
  let scripts: string;

  /** Runs a script of ours on a lab host, as a long-lived service would run. */
  const run = (host: LabHost, script: string, args: string[]) => {
    const child = spawn("ip", ["netns", "exec", host.ns, process.execPath, join(scripts, script), ...args], { stdio: "ignore" });
    processes.push(child);
    return child;
  };

  beforeAll(async () => {
    lab = await startMeshLab();
    scripts = join(lab.dir, "srv");
    mkdirSync(scripts, { recursive: true });
    writeFileSync(join(scripts, "orders-db.js"), serverJs);
    writeFileSync(join(scripts, "checkout.js"), clientJs);
    writeFileSync(join(scripts, "cache.js"), serverJs);
    writeFileSync(join(scripts, "worker.js"), clientJs);
    const hub = lab.nat.addSite("hub", "none");
    serverHost = lab.nat.addSite("db", "none").hosts[0] as LabHost;
    clientHost = lab.nat.addSite("web", "none").hosts[0] as LabHost;
    coordinator = labCoordinator(lab, hub, "hub");
    await coordinator.start();
    watch.start(coordinator);
    const { invite } = await coordinator.json<{ invite: string }>("token", "create", "--uses", "2");
    for (const [host, name] of [
      [serverHost, "db"],
      [clientHost, "web"],
    ] as const) {
      const agent = new LabAgent(lab, host, name);
      agents.push(agent);
      agent.start(invite);
      await watch.until(name, (a) => a.status === "healthy", agent.startedAt, 60_000);
    }
  }, 180_000);

  afterAll(async () => {
    for (const child of processes) child.kill("SIGKILL");
    for (const agent of agents) await agent.stop();
    await watch.stop();
    await coordinator?.stop();
    await lab?.destroy();
  }, 60_000);

  /** Polls `coral topology --json` until `test` holds; fails with the last graph and the agents' logs. */
  async function topologyUntil(test: (graph: TopologyResponse) => boolean, timeoutMs = 90_000): Promise<TopologyResponse> {
    const deadline = Date.now() + timeoutMs;
    let graph: TopologyResponse | undefined;
    while (Date.now() < deadline) {
      graph = await coordinator.json<TopologyResponse>("topology");
      if (test(graph)) return graph;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    throw new Error(
      `the graph never got there; last:\n${JSON.stringify(graph, null, 2)}\n${agents.map((a) => `${a.name}:\n${a.log.slice(-15).join("\n")}`).join("\n")}`,
    );
  }

  it("shows a client's connections to a server on another host as one edge between the two services", async () => {
    run(serverHost, "orders-db.js", [String(SERVER_PORT)]);
    run(clientHost, "checkout.js", [serverHost.address, String(SERVER_PORT), "3", "18080"]);
    const graph = await topologyUntil((g) => g.edges.some((e) => e.to === "service:orders-db"));
    const edges = graph.edges.filter((e) => e.to === "service:orders-db");
    expect(edges).toHaveLength(1);
    expect(edges[0]).toMatchObject({
      from: "service:checkout",
      port: SERVER_PORT,
      protocol: "tcp",
      via: [{ agent: "web", address: serverHost.address }],
    });
    expect(graph.nodes.find((n) => n.id === "service:orders-db")?.agents).toEqual(["db"]);
    expect(graph.nodes.find((n) => n.id === "service:checkout")?.agents).toEqual(["web"]);
    const services = await coordinator.json<ServiceSummary[]>("services");
    expect(services.find((s) => s.name === "orders-db")?.dependents.map((d) => d.name)).toEqual(["checkout"]);
  }, 120_000);

  it("still does with 300 more connections open on the client's host", async () => {
    run(clientHost, "cache.js", [String(LOCAL_PORT)]);
    run(clientHost, "worker.js", ["127.0.0.1", String(LOCAL_PORT), String(BUSY_CONNECTIONS), "18081"]);
    // The host's own graph shows up too (worker → cache on loopback), and the cross-host edge stays one edge.
    const graph = await topologyUntil((g) => g.edges.some((e) => e.from === "service:worker" && e.to === "service:cache"));
    const rows = lab.nat.exec(clientHost.ns, ["sh", "-c", "wc -l < /proc/net/tcp"]);
    expect(Number(rows.output.trim())).toBeGreaterThan(2 * BUSY_CONNECTIONS);
    const later = await topologyUntil(
      (g) =>
        (g.edges.find((e) => e.to === "service:orders-db")?.lastSeen ?? 0) >
        (graph.edges.find((e) => e.to === "service:orders-db")?.lastSeen ?? 0),
    );
    expect(later.edges.filter((e) => e.to === "service:orders-db")).toHaveLength(1);
    expect(later.edges.find((e) => e.to === "service:cache")).toMatchObject({ from: "service:worker", port: LOCAL_PORT });
    // What a person sees, in the test's output.
    for (const command of [
      ["services"],
      ["services", "orders-db"],
      ["topology"],
      ["metrics", "checkout", "--since", "5m"],
      ["events", "--limit", "8"],
    ]) {
      const shown = await coordinator.cli(...command);
      process.stdout.write(`\n$ coral ${command.join(" ")}\n${shown.out}`);
    }
  }, 240_000);
});
