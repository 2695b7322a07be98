/**
 * What the browser tests and the bench run against: the real `coral coordinator start
 * --wireguard off` as a child process, seeded through its agent service (gRPC `Report`, as
 * agents report), and Debian's chromium driven by playwright-core.
 *
 * Agents are written into the coordinator's store before they report, as enrollment would
 * (with WireGuard off the coordinator trusts the name an agent on this machine claims).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stopChild, tsxNode, waitForLine } from "@coral-mesh/coordinator/testing";
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { credentials, Metadata } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import type { Core } from "cytoscape";
import { type BrowserContext, chromium } from "playwright-core";

declare global {
  interface Window {
    /** The map page's graph (src/pages/map.tsx). */
    coralMap?: Core;
  }
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const CHROMIUM = process.env.CORAL_CHROMIUM ?? "/usr/bin/chromium";
export const DASHBOARD_BUILT = join(root, "coordinator", "dashboard", "index.html");

/** Why the browser tests cannot run here, or null. */
export function browserSkipReason(): string | null {
  if (!existsSync(CHROMIUM)) return `no chromium at ${CHROMIUM} (apt-get install chromium)`;
  if (!existsSync(DASHBOARD_BUILT)) return "the dashboard is not built (npm run build)";
  return null;
}

export interface RunningCoordinator {
  url: string;
  grpcPort: number;
  dataDir: string;
  child: ChildProcess;
  log: string[];
  stop(): Promise<void>;
}

export async function startCoordinator(options: { apiHost?: string; token?: string } = {}): Promise<RunningCoordinator> {
  const dataDir = mkdtempSync(join(tmpdir(), "coral-dashboard-"));
  const args = [
    join(root, "coordinator", "src", "cli.ts"),
    "coordinator",
    "start",
    "--wireguard",
    "off",
    "--discovery",
    "http://127.0.0.1:9",
    "--data-dir",
    dataDir,
    "--api-port",
    "0",
    "--grpc-port",
    "0",
    // Seeded agents heartbeat once: a long interval keeps them healthy for the test.
    "--heartbeat-interval",
    "1h",
    ...(options.apiHost ? ["--api-host", options.apiHost] : []),
  ];
  const child = spawn(tsxNode[0] as string, [...tsxNode.slice(1), ...args], {
    cwd: join(root, "coordinator"),
    stdio: ["ignore", "pipe", "pipe"],
    // No model key: the Ask page's answers come from the findings alone, whatever the host's environment holds.
    env: { ...process.env, ANTHROPIC_API_KEY: "", OPENAI_API_KEY: "", ...(options.token ? { CORAL_API_TOKEN: options.token } : {}) },
  });
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  const { log, ready } = waitForLine(child, /ready: mesh /, "the coordinator", 120_000);
  await ready;
  const url = /API on (\S+)/.exec(log.join("\n"))?.[1];
  const grpcPort = Number(/agent service \(gRPC\) on \S+:(\d+)/.exec(log.join("\n"))?.[1]);
  if (!url || !grpcPort) throw new Error(`the coordinator did not say where it listens:\n${log.join("\n")}`);
  return {
    url,
    grpcPort,
    dataDir,
    child,
    log,
    stop: async () => {
      process.off("exit", kill);
      await stopChild(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface SeedService {
  name: string;
  agent: string;
  port: number;
  health?: "serving" | "not_serving";
  version?: string;
}

const SERVICE = meshV1.SubjectKind.SUBJECT_KIND_SERVICE;

/** Agents of the mesh, as reports see them: each reports its services, connections, events and samples. */
export class Seeder {
  private readonly client: meshV1.AgentServiceClient;
  private readonly sequences = new Map<string, number>();
  private readonly meshIps = new Map<string, string>();

  constructor(private readonly coordinator: RunningCoordinator) {
    this.client = new meshV1.AgentServiceClient(`127.0.0.1:${coordinator.grpcPort}`, credentials.createInsecure());
  }

  /** Enrolls agents straight into the store, heartbeating now. */
  addAgents(names: string[]): void {
    const db = new Database(join(this.coordinator.dataDir, "coral.db"));
    db.pragma("busy_timeout = 10000");
    const now = Date.now();
    const insert = db.prepare(
      "INSERT INTO agents (name, wireguard_key, mesh_ip, enrolled_at, last_heartbeat_at, hostname, version, plugins, addresses) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '[]')",
    );
    for (const name of names) {
      const ip = `100.64.${Math.floor((this.meshIps.size + 2) / 250)}.${((this.meshIps.size + 2) % 250) + 1}`;
      this.meshIps.set(name, ip);
      insert.run(name, `key-${name}`, ip, now, now, `${name}.example`, "0.1.0", JSON.stringify([{ name: "passive", state: "running" }]));
    }
    db.close();
  }

  meshIp(agent: string): string {
    const ip = this.meshIps.get(agent);
    if (!ip) throw new Error(`no agent ${agent}`);
    return ip;
  }

  report(agent: string, parts: Partial<meshV1.Batch>): Promise<void> {
    const sequence = (this.sequences.get(agent) ?? 0) + 1;
    this.sequences.set(agent, sequence);
    const batch: meshV1.Batch = {
      sequence,
      createdAtUnixMs: Date.now(),
      droppedBefore: 0,
      events: [],
      metrics: [],
      connections: [],
      ...parts,
    };
    const md = new Metadata();
    md.set("coral-agent", agent);
    return new Promise((done, fail) =>
      this.client.report({ batches: [batch], sentAtUnixMs: Date.now() }, md, { deadline: Date.now() + 30_000 }, (error) =>
        error ? fail(error) : done(),
      ),
    );
  }

  static event(kind: string, service: string, attributes: Record<string, string>, time = Date.now()): meshV1.Event {
    return {
      kind,
      timeUnixMs: time,
      subject: { kind: SERVICE, id: service, name: service },
      attributes,
      evidenceJson: "{}",
      source: "sdk",
    };
  }

  /** Each service observed (through the SDK) with its health, grouped into one report per agent. */
  async services(services: SeedService[]): Promise<void> {
    const byAgent = new Map<string, SeedService[]>();
    for (const s of services) byAgent.set(s.agent, [...(byAgent.get(s.agent) ?? []), s]);
    for (const [agent, list] of byAgent) {
      await this.report(agent, {
        events: list.flatMap((s) => [
          Seeder.event("service.observed", s.name, { source: "sdk", version: s.version ?? "1.0.0", listening: `0.0.0.0:${s.port}` }),
          Seeder.event("service.health_changed", s.name, { from: "unknown", to: s.health ?? "serving" }),
        ]),
      });
    }
  }

  /** Connections from each `from` to each `to`'s agent and port. */
  async edges(services: SeedService[], edges: Array<[string, string]>): Promise<void> {
    const byName = new Map(services.map((s) => [s.name, s]));
    const byAgent = new Map<string, meshV1.Connection[]>();
    const now = Date.now();
    edges.forEach(([from, to], i) => {
      const a = byName.get(from);
      const b = byName.get(to);
      if (!a || !b) throw new Error(`no service ${from} or ${to}`);
      const list = byAgent.get(a.agent) ?? [];
      list.push({
        protocol: "tcp",
        localAddress: this.meshIp(a.agent),
        localPort: 40_000 + (i % 20_000),
        remoteAddress: this.meshIp(b.agent),
        remotePort: b.port,
        pid: 1000 + i,
        processName: from,
        subject: { kind: SERVICE, id: from, name: from },
        observedAtUnixMs: now,
        source: "passive",
      });
      byAgent.set(a.agent, list);
    });
    for (const [agent, connections] of byAgent) await this.report(agent, { connections });
  }

  close(): void {
    this.client.close();
  }
}

/** Debian's chromium, headless, with a new empty profile; removed on close. */
export async function launchBrowser(): Promise<BrowserContext & { dispose(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), "coral-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 120_000,
  });
  return Object.assign(context, {
    dispose: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  });
}

/** A small application: a web tier, APIs, data stores, on three agents. */
export function smallMesh(): { agents: string[]; services: SeedService[]; edges: Array<[string, string]> } {
  const agents = ["web-1", "api-1", "db-1"];
  const services: SeedService[] = [
    { name: "frontend", agent: "web-1", port: 8080 },
    { name: "checkout", agent: "api-1", port: 9001 },
    { name: "catalog", agent: "api-1", port: 9002 },
    { name: "postgres", agent: "db-1", port: 5432 },
    { name: "redis", agent: "db-1", port: 6379 },
  ];
  const edges: Array<[string, string]> = [
    ["frontend", "checkout"],
    ["frontend", "catalog"],
    ["checkout", "postgres"],
    ["catalog", "postgres"],
    ["checkout", "redis"],
  ];
  return { agents, services, edges };
}

/** `count` services on `count / 30` agents and `edgeCount` distinct edges, from a fixed seed. */
export function largeMesh(count: number, edgeCount: number): { agents: string[]; services: SeedService[]; edges: Array<[string, string]> } {
  const agents = Array.from({ length: Math.ceil(count / 30) }, (_, i) => `host-${i + 1}`);
  const services = Array.from({ length: count }, (_, i) => ({
    name: `svc-${i}`,
    agent: agents[i % agents.length] as string,
    port: 10_000 + i,
  }));
  let seed = 42;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  const seen = new Set<string>();
  const edges: Array<[string, string]> = [];
  while (edges.length < edgeCount) {
    // Layered: a service calls ones with higher numbers, as tiers call the tiers below.
    const a = Math.floor(random() * (count - 1));
    const b = a + 1 + Math.floor(random() * Math.min(60, count - a - 1));
    const key = `${a}>${b}`;
    if (seen.has(key)) continue;
    seen.add(key);
    edges.push([`svc-${a}`, `svc-${b}`]);
  }
  return { agents, services, edges };
}
