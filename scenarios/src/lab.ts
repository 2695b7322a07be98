/**
 * The scenario lab: the NAT lab of e2e/ with one coordinator and three agent hosts, and the
 * services of each scenario run on those hosts as a user's would be, inside the hosts'
 * namespaces, some under a supervisor, some in a memory cgroup of their own.
 *
 * Every host's processes share the machine's /proc (network namespaces do not separate pids),
 * so each agent would see every host's programs, and the machine's other processes too. Each
 * host therefore runs its programs with a `node` of its own (a hard link, `HOST/bin/node`), and
 * its agent's `passive` collector is limited to that executable (`include`): each agent sees
 * only its own host's services, as on separate machines.
 *
 * Everything started here is killed, every cgroup removed and every mount undone by destroy(),
 * and by the synchronous cleanup on process exit (Ctrl-C, a crash).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { LabCoordinator } from "@coral-mesh/coordinator/testing";
import { HealthWatch, LabAgent, labCoordinator, type MeshLab, startMeshLab } from "@coral-mesh/e2e/mesh";
import { type LabHost, missingForNatLab } from "@coral-mesh/wireguard/testing";
import { CoordinatorApi } from "./api.js";

const here = dirname(fileURLToPath(import.meta.url));
export const PROGRAMS = resolve(here, "../programs");
const PLUGINS = resolve(here, "../plugins");
const REPO_NODE_MODULES = resolve(here, "../../node_modules");
const MEMORY_CGROUPS = "/sys/fs/cgroup/memory";

export const HOST_NAMES = ["host-a", "host-b", "host-c"] as const;
export type HostName = (typeof HOST_NAMES)[number];

/** Ports the `sdk` collector asks at every collect; SDK apps listen on one of them. */
export const SDK_PORTS = [50151, 50152, 50153];
/** Size of the data volume on host-c (a tmpfs, reported through passive's `mounts`). */
export const DATA_VOLUME_BYTES = 64 * 1024 * 1024;
/** A process that has run this long is a service (passive's `serviceAfterMs`, 60 s by default). */
export const SERVICE_AFTER_MS = 3_000;

export interface ScenarioHost {
  /** Also its agent's name. */
  name: HostName;
  ns: string;
  address: string;
  dir: string;
  /** This host's own `node` (see the top of this file). */
  node: string;
  /** Where its services are installed, one directory each. */
  srv: string;
  /** The data volume's mount point (a tmpfs), on host-c only. */
  data: string | undefined;
  agent: LabAgent;
}

export interface ServiceSpec {
  /** The program, a file in programs/. */
  program: string;
  /** The service's name on its host: the script is installed as `srv/NAME/NAME.mjs`. */
  as: string;
  /** Baked into the installed script (its `RELEASE`), so that a new release is a new file. */
  release?: Record<string, unknown>;
  /** Other programs installed beside it, as they are (a worker script, a job). */
  with?: string[];
  /** Run under supervise.sh, which starts it again when it exits. */
  supervised?: boolean;
  /** Run in a memory cgroup of its own with this limit (memory.limit_in_bytes). */
  memoryLimitBytes?: number;
  /** Its nice value: a CPU-heavy program yields to the lab's agents and coordinator. */
  nice?: number;
}

const exec = (command: string, args: string[]) => execFileSync(command, args, { stdio: "pipe" }).toString();

/** A service's script: the program with its release baked in. */
export function renderRelease(source: string, release: Record<string, unknown>): string {
  const marker = "/* release */ {}";
  if (!source.includes(marker)) return source;
  return source.replace(marker, JSON.stringify(release));
}

export class RunningService {
  constructor(
    readonly lab: ScenarioLab,
    readonly host: ScenarioHost,
    readonly spec: ServiceSpec,
    readonly script: string,
    /** The process started for it (`sh supervise.sh` or the program itself); also its process group. */
    readonly child: ChildProcess,
  ) {}

  get name(): string {
    return this.spec.as;
  }

  /** The program's current pid: the supervisor's child, or the process itself. */
  pid(): number | undefined {
    const top = this.child.pid;
    if (top === undefined || this.child.exitCode !== null) return undefined;
    if (!this.spec.supervised) return top;
    try {
      const children = readFileSync(`/proc/${top}/task/${top}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
      const pid = Number(children[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Sends `signal` to the program (not its supervisor); false when it is not running. */
  signal(signal: NodeJS.Signals): boolean {
    const pid = this.pid();
    if (pid === undefined) return false;
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A deploy: the new release replaces the script file (written beside it, then renamed over
   * it, as package managers and deploy tools do), and the program is restarted at once.
   */
  async deploy(release: Record<string, unknown>): Promise<void> {
    const source = readFileSync(join(PROGRAMS, this.spec.program), "utf8");
    writeFileSync(`${this.script}.new`, renderRelease(source, release));
    renameSync(`${this.script}.new`, this.script);
    const before = this.pid();
    if (!this.signal("SIGTERM")) throw new Error(`${this.name} is not running: nothing to restart`);
    // Wait until the supervisor has started the new process.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const now = this.pid();
      if (now !== undefined && now !== before) return;
      await sleep(50);
    }
    throw new Error(`${this.name} did not come back within 10 s of its deploy`);
  }

  stop(): void {
    killGroup(this.child);
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ScenarioLab {
  readonly hosts = {} as Record<HostName, ScenarioHost>;
  readonly api = new CoordinatorApi();
  readonly watch = new HealthWatch();
  coordinator!: LabCoordinator;
  private readonly children = new Set<ChildProcess>();
  private readonly cgroups: string[] = [];
  private readonly mounts: string[] = [];
  private cgroupParent: string | undefined;
  private destroyed = false;
  private readonly onExit = () => this.cleanupSync();

  private constructor(
    readonly mesh: MeshLab,
    readonly log: (line: string) => void,
  ) {
    process.once("exit", this.onExit);
  }

  /** Why the lab cannot run here (root, WireGuard, nft, the v1 memory controller), or null. */
  static missing(): string | null {
    const missing = missingForNatLab();
    if (missing) return missing;
    if (!existsSync(join(MEMORY_CGROUPS, "memory.limit_in_bytes")))
      return `needs the memory cgroup controller at ${MEMORY_CGROUPS} (cgroup v1)`;
    return null;
  }

  static async start(log: (line: string) => void): Promise<ScenarioLab> {
    const mesh = await startMeshLab();
    const lab = new ScenarioLab(mesh, log);
    try {
      await lab.setUp();
      return lab;
    } catch (error) {
      await lab.destroy();
      throw error;
    }
  }

  private async setUp(): Promise<void> {
    const { mesh } = this;
    const hub = mesh.nat.addSite("hub", "none");
    // host-a is on the internet (a data centre), host-b and host-c behind NAT routers of their own.
    const sites = [
      mesh.nat.addSite("dc", "none"),
      mesh.nat.addSite("office", "port-restricted"),
      mesh.nat.addSite("cloud", "port-restricted"),
    ];
    this.coordinator = labCoordinator(mesh, hub, "hub");
    await this.coordinator.start();
    this.watch.start(this.coordinator);
    this.api.start(this.coordinator);
    this.cgroupParent = join(MEMORY_CGROUPS, `coral-scenarios-${mesh.nat.prefix}`);
    mkdirSync(this.cgroupParent);
    // The agents run under `ip netns exec`, whose /sys has no cgroup mounts: the memory
    // hierarchy is mounted again where they can read it (passive's `cgroupRoot`).
    const cgroupRoot = join(mesh.dir, "cgroup");
    mkdirSync(join(cgroupRoot, "memory"), { recursive: true });
    exec("mount", ["-t", "cgroup", "-o", "memory", "coral-scenarios", join(cgroupRoot, "memory")]);
    this.mounts.push(join(cgroupRoot, "memory"));
    const { invite } = await this.coordinator.json<{ invite: string }>("token", "create", "--uses", String(HOST_NAMES.length));
    for (const [i, name] of HOST_NAMES.entries()) {
      const labHost = sites[i]?.hosts[0] as LabHost;
      const dir = join(mesh.dir, name);
      const srv = join(dir, "srv");
      mkdirSync(join(dir, "bin"), { recursive: true });
      mkdirSync(srv, { recursive: true });
      // Installed services import packages (the SDK) from the repository's node_modules.
      symlinkSync(REPO_NODE_MODULES, join(srv, "node_modules"));
      const node = join(dir, "bin", "node");
      try {
        linkSync(realpathSync(process.execPath), node);
      } catch {
        copyFileSync(realpathSync(process.execPath), node);
        exec("chmod", ["755", node]);
      }
      let data: string | undefined;
      if (name === "host-c") {
        data = join(dir, "data");
        mkdirSync(data);
        exec("mount", ["-t", "tmpfs", "-o", `size=${DATA_VOLUME_BYTES}`, "coral-scenarios-data", data]);
        this.mounts.push(data);
      }
      const config = join(dir, "agent.json");
      writeFileSync(
        config,
        JSON.stringify({
          plugins: {
            passive: {
              include: [`^${escapeRegExp(node)}$`],
              serviceAfterMs: SERVICE_AFTER_MS,
              cgroupRoot,
              ...(data ? { mounts: [data] } : {}),
            },
            sdk: { ports: SDK_PORTS },
          },
        }),
      );
      const agent = new LabAgent(mesh, labHost, name, [
        `--plugins=${join(PLUGINS, "passive.mjs")},${join(PLUGINS, "sdk.mjs")}`,
        "--config",
        config,
      ]);
      this.hosts[name] = { name, ns: labHost.ns, address: labHost.address, dir, node, srv, data, agent };
      agent.start(invite);
      try {
        await this.watch.until(name, (a) => a.status === "healthy", agent.startedAt, 60_000);
      } catch (error) {
        throw new Error(`${(error as Error).message}\nagent ${name}:\n${agent.log.slice(-20).join("\n")}`);
      }
      this.log(`  ${name} (${labHost.address}) joined`);
    }
  }

  /** Installs a service on `host` and starts it; resolves once its process runs. */
  launch(hostName: HostName, spec: ServiceSpec): RunningService {
    const host = this.hosts[hostName];
    const dir = join(host.srv, spec.as);
    mkdirSync(dir, { recursive: true });
    const script = join(dir, `${spec.as}.mjs`);
    writeFileSync(script, renderRelease(readFileSync(join(PROGRAMS, spec.program), "utf8"), spec.release ?? {}));
    for (const other of spec.with ?? []) copyFileSync(join(PROGRAMS, other), join(dir, other));
    let command = spec.supervised ? ["/bin/sh", join(PROGRAMS, "supervise.sh"), host.node, script] : [host.node, script];
    if (spec.nice !== undefined) command = ["nice", "-n", String(spec.nice), ...command];
    let cgroup: string | undefined;
    if (spec.memoryLimitBytes !== undefined) {
      cgroup = join(this.cgroupParent as string, `${host.name}-${spec.as}`);
      mkdirSync(cgroup);
      this.cgroups.push(cgroup);
      writeFileSync(join(cgroup, "memory.limit_in_bytes"), String(spec.memoryLimitBytes));
    }
    const child = this.spawnInHost(host, command, dir, cgroup);
    return new RunningService(this, host, spec, script, child);
  }

  /** Runs a helper program (a client generating traffic) on `host` with the harness's `node`: no agent counts it as a service. */
  runTool(hostName: HostName, program: string, args: string[]): ChildProcess {
    const host = this.hosts[hostName];
    return this.spawnInHost(host, [process.execPath, join(PROGRAMS, program), ...args], host.dir);
  }

  /**
   * Runs `command` in the host's namespace, in `cgroup` when given. The process joins the cgroup
   * before `ip netns exec`, which mounts a /sys of the namespace's own, without the cgroup mounts.
   */
  private spawnInHost(host: ScenarioHost, command: string[], cwd: string, cgroup?: string): ChildProcess {
    const inNs = ["ip", "netns", "exec", host.ns, ...command];
    const [file, ...args] = cgroup ? ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...inNs] : inNs;
    const child = spawn(file as string, args, { cwd, stdio: "ignore", detached: true });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  /** Runs `command` in the host's namespace and answers its output (for `df` and the like). */
  inHost(hostName: HostName, command: string[]): string {
    return exec("ip", ["netns", "exec", this.hosts[hostName].ns, ...command]);
  }

  /** Stops every service and tool of a scenario, and removes their cgroups. */
  async stopAll(): Promise<void> {
    const children = [...this.children];
    for (const child of children) killGroup(child);
    await Promise.all(
      children.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((r) => child.once("exit", r)) : null)),
    );
    await this.removeCgroups();
  }

  private async removeCgroups(): Promise<void> {
    for (const cgroup of this.cgroups.splice(0)) {
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          rmdirSync(cgroup);
          break;
        } catch {
          await sleep(100); // its last process is still exiting
        }
      }
    }
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await this.stopAll();
    for (const host of Object.values(this.hosts)) await host.agent.stop();
    await this.watch.stop();
    this.api.stop();
    await this.coordinator?.stop();
    this.cleanupSync();
    await this.mesh.destroy();
    process.off("exit", this.onExit);
  }

  /** What must not outlive the run, undone synchronously (also from an exit handler). */
  private cleanupSync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const child of this.children) killGroup(child);
    for (const mount of this.mounts.splice(0)) {
      try {
        exec("umount", ["-l", mount]);
      } catch {
        // Not mounted any more.
      }
    }
    for (const cgroup of [...this.cgroups.splice(0), ...(this.cgroupParent ? [this.cgroupParent] : [])]) {
      // A process killed a moment ago may still be exiting (EBUSY): try for up to 2 s.
      for (let attempt = 0; attempt < 20 && existsSync(cgroup); attempt++) {
        try {
          rmdirSync(cgroup);
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
        }
      }
    }
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
