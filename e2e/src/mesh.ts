/**
 * The whole mesh in a NAT lab: discovery served by workerd in the lab's "internet"
 * namespace, a coordinator and agents on sites behind any kind of NAT, run as users run
 * them (the built `coral` CLI and `coral-agent`), and a watch on the coordinator's API
 * that timestamps every change of an agent's health and path.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { LabCoordinator, stopChild, waitForLine } from "@coral-mesh/coordinator/testing";
import { type LocalDiscovery, startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import { COORDINATOR_ADDRESS } from "@coral-mesh/wireguard/path";
import { createNatLab, type LabHost, type NatKind, type NatLab, type Site } from "@coral-mesh/wireguard/testing";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Children this process started; killed if it exits first (a failed test, Ctrl-C). */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});
function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}
/** The agent as users run it: its command (with the Node.js flags on its `#!` line), loading the built bundle. */
export const AGENT_BIN = join(root, "agent", "bin", "coral-agent.cjs");
const AGENT_BUNDLE = join(root, "agent", "dist", "agent.cjs");
/** `coral` as users run it: the built CLI (`LabCoordinator`'s `built`). */
const CORAL_CLI = join(root, "coordinator", "dist", "cli.js");

export interface MeshLab {
  nat: NatLab;
  discovery: LocalDiscovery;
  /** Discovery goes away (its Worker stops; its D1 stays on disk)... */
  stopDiscovery(): Promise<void>;
  /** ...and comes back at the same address with the same data. */
  startDiscovery(): Promise<void>;
  /** A fresh directory for this lab's data directories. */
  dir: string;
  destroy(): Promise<void>;
}

export async function startMeshLab(): Promise<MeshLab> {
  for (const built of [AGENT_BUNDLE, CORAL_CLI]) {
    if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first`);
  }
  const nat = createNatLab();
  const dir = mkdtempSync(join(tmpdir(), "coral-e2e-"));
  const cleanup = () => nat.destroy();
  process.once("exit", cleanup);
  try {
    const options = { netns: nat.internet.ns, ip: nat.internet.address, port: 8787, persistTo: join(dir, "discovery") };
    let running: LocalDiscovery | undefined = await startLocalDiscovery(options);
    const lab: MeshLab = {
      nat,
      discovery: running,
      dir,
      async stopDiscovery() {
        await running?.stop();
        running = undefined;
      },
      async startDiscovery() {
        running = await startLocalDiscovery(options);
        lab.discovery = running;
      },
      async destroy() {
        await running?.stop();
        nat.destroy();
        process.off("exit", cleanup);
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return lab;
  } catch (error) {
    nat.destroy();
    throw error;
  }
}

/** The coordinator on `site`'s (first) host, advertising what it detects and what discovery saw. */
export function labCoordinator(lab: MeshLab, site: Site, name: string, extraArgs: string[] = []): LabCoordinator {
  return new LabCoordinator({
    ns: (site.hosts[0] as LabHost).ns,
    dataDir: join(lab.dir, name),
    interfaceName: `${lab.nat.prefix}c${++interfaces}`,
    discoveryUrl: lab.discovery.url,
    extraArgs: ["--heartbeat-interval", "1s", ...extraArgs],
    built: true,
  });
}

let interfaces = 0;

/**
 * The environment an agent gets on a host of its own (from its service manager), not this test
 * runner's. The one difference that matters: these machines' environment sets
 * NODE_EXTRA_CA_CERTS to Debian's whole CA bundle, and Node 20 reads and parses that file at
 * every start (nodejs/node#40524): about 40 ms of each agent start here, for a lab without TLS.
 */
function serviceEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** `coral-agent` (built) on a lab host, with the passive collector unless `args` say otherwise. */
export class LabAgent {
  child: ChildProcess | undefined;
  log: string[] = [];
  /** The log with each line's time since start. */
  timeline: string[] = [];
  startedAt = 0;
  readonly dataDir: string;
  readonly interfaceName: string;

  constructor(
    readonly lab: MeshLab,
    readonly host: LabHost,
    readonly name: string,
    /** The agent's options besides its data directory, interface, name and invite. */
    readonly args: readonly string[] = ["--plugins=passive"],
  ) {
    this.dataDir = join(lab.dir, `agent-${name}`);
    // Unique on the machine and at most 15 characters, whatever the agent's name.
    this.interfaceName = `${lab.nat.prefix}g${++interfaces}`;
  }

  /** Starts the agent (joining with `invite` the first time); resolves once its process runs. */
  start(invite?: string): ChildProcess {
    const args = [
      AGENT_BIN,
      ...this.args,
      "--data-dir",
      this.dataDir,
      "--interface",
      this.interfaceName,
      "--name",
      this.name,
      ...(invite ? ["--join", invite] : []),
    ];
    this.startedAt = Date.now();
    const child = track(spawn("ip", ["netns", "exec", this.host.ns, ...args], { stdio: ["ignore", "ignore", "pipe"], env: serviceEnv() }));
    this.child = child;
    this.log = [];
    this.timeline = [];
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
      this.log.push(line);
      this.timeline.push(`${String(Date.now() - this.startedAt).padStart(6)} ms  ${line}`);
    });
    return child;
  }

  /** When (ms since start) the first log line matching `pattern` came, if one did. */
  at(pattern: RegExp): number | undefined {
    const line = this.timeline.find((l) => pattern.test(l));
    return line === undefined ? undefined : Number(line.trim().split(" ")[0]);
  }

  /** Resolves when a log line matches, with the ms since start; fails on exit or timeout. */
  async waitForLog(pattern: RegExp, timeoutMs = 30_000): Promise<number> {
    const child = this.child;
    if (!child) throw new Error(`agent ${this.name} is not running`);
    if (this.log.some((l) => pattern.test(l))) return Date.now() - this.startedAt;
    const waiting = waitForLine(child, pattern, `agent ${this.name}`, timeoutMs);
    await waiting.ready;
    return Date.now() - this.startedAt;
  }

  stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    return stopChild(this.child, signal);
  }

  ping(address = COORDINATOR_ADDRESS): boolean {
    return this.lab.nat.exec(this.host.ns, ["ping", "-c", "1", "-W", "2", address]).ok;
  }
}

export interface AgentState {
  name: string;
  status: string;
  path: string;
  /** The coordinator's time of the agent's last register or heartbeat. */
  lastSeen: number | null;
}

/**
 * Polls the coordinator's API every 200 ms from inside its namespace (the API listens on
 * loopback there) and timestamps each change. `until` answers when a poll saw it;
 * `healthyAt` when the coordinator recorded the heartbeat that made it so, which is not
 * off by up to a poll. Polling more often would not make that more exact, only take CPU
 * (the watcher's and the coordinator's) from the agents being timed: at every 50 ms, the
 * two took a tenth of a core.
 */
export class HealthWatch {
  private child: ChildProcess | undefined;
  readonly history: Array<{ at: number; agent: AgentState }> = [];
  private waiters: Array<() => void> = [];

  start(coordinator: LabCoordinator): void {
    const script = `
      const { readFileSync } = await import("node:fs");
      const api = JSON.parse(readFileSync(process.argv[1] + "/api.json", "utf8"));
      const last = new Map();
      for (;;) {
        try {
          const response = await fetch(api.url + "/v1/agents", { headers: api.token ? { authorization: "Bearer " + api.token } : {} });
          const agents = (await response.json()).agents;
          // An agent gone from the list (removed) is forgotten, so that when it enrolls again
          // its state is reported afresh even if it is the same as before its removal.
          const present = new Set(agents.map((a) => a.name));
          for (const name of last.keys()) if (!present.has(name)) last.delete(name);
          for (const a of agents) {
            const key = a.status + " " + a.path;
            if (last.get(a.name) !== key) {
              last.set(a.name, key);
              process.stdout.write(JSON.stringify({ at: Date.now(), agent: { name: a.name, status: a.status, path: a.path, lastSeen: a.lastSeen } }) + "\\n");
            }
          }
        } catch {
          // The API is away (a coordinator restart): once it answers again, every agent's
          // state is reported afresh, as seen by the new coordinator.
          last.clear();
        }
        await new Promise((r) => setTimeout(r, 200));
      }`;
    const child = track(
      spawn(
        "ip",
        ["netns", "exec", coordinator.options.ns, process.execPath, "--input-type=module", "-e", script, coordinator.options.dataDir],
        {
          stdio: ["ignore", "pipe", "inherit"],
        },
      ),
    );
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      this.history.push(JSON.parse(line) as { at: number; agent: AgentState });
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.child = child;
  }

  current(name: string): AgentState | undefined {
    return this.history.filter((h) => h.agent.name === name).at(-1)?.agent;
  }

  /** When a poll first saw, after `since`, a change for which `test` holds. */
  async until(name: string, test: (a: AgentState) => boolean, since: number, timeoutMs = 30_000): Promise<number> {
    return (await this.first(name, test, since, timeoutMs)).at;
  }

  /**
   * The same, timed by the coordinator: when it recorded the register or heartbeat that
   * made `test` hold (for a state reached by one, such as healthy).
   */
  async healthyAt(name: string, test: (a: AgentState) => boolean, since: number, timeoutMs = 30_000): Promise<number> {
    const hit = await this.first(name, test, since, timeoutMs);
    const recorded = hit.agent.lastSeen;
    return recorded !== null && recorded >= since && recorded <= hit.at ? recorded : hit.at;
  }

  private async first(
    name: string,
    test: (a: AgentState) => boolean,
    since: number,
    timeoutMs: number,
  ): Promise<{ at: number; agent: AgentState }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.history.find((h) => h.agent.name === name && h.at >= since && test(h.agent));
      if (hit) return hit;
      if (Date.now() > deadline) {
        throw new Error(
          `agent ${name} did not get there within ${timeoutMs / 1000} s; it is ${JSON.stringify(this.current(name) ?? "unknown")}`,
        );
      }
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  async stop(): Promise<void> {
    await stopChild(this.child, "SIGKILL");
  }
}

/** What should happen between a hub behind `coordinator` and an agent behind `agent`. */
export function expectedPath(coordinator: NatKind, agent: NatKind): "direct" | "relay" {
  // Both ends let in only replies, and one of them maps per destination: neither can
  // address the other's mapping in advance, and the tunnel goes through the relay.
  if (coordinator === "port-restricted" && agent === "symmetric") return "relay";
  if (coordinator === "symmetric" && (agent === "port-restricted" || agent === "symmetric")) return "relay";
  return "direct";
}
