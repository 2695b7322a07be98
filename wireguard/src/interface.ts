/**
 * A WireGuard interface driven through `wg` and `ip`: the kernel module where there
 * is one, otherwise a supervised `wireguard-go` that is restarted (and reconfigured)
 * if it dies. Private keys never appear in argv or logs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { CoralError } from "@coral/sdk-proto";
import { execa } from "execa";
import { type InterfaceStatus, parseDump } from "./dump.js";

export interface InterfaceOptions {
  /** At most 15 characters; unique on the machine (wireguard-go's sockets are shared by all namespaces). */
  name: string;
  privateKey: string;
  /** UDP port; 0 or absent lets WireGuard choose. */
  listenPort?: number;
  /** The interface's own address with prefix, e.g. `100.64.0.1/10`. */
  address: string;
  /** Prefixes to route through the interface, e.g. the mesh's `100.64.0.0/10` on an agent whose address is a /32. */
  routes?: string[];
  /** Run everything inside this network namespace (labs and tests). */
  netns?: string;
  /** `auto` (default) tries the kernel module, then wireguard-go. */
  mode?: "auto" | "kernel" | "userspace";
  onEvent?: (event: WireGuardEvent) => void;
}

export interface WireGuardEvent {
  kind: "mode" | "replaced" | "exited" | "restarted" | "restart-failed";
  message: string;
}

export interface PeerConfig {
  publicKey: string;
  /** `ip:port` to send to; absent for a peer that will contact us first. */
  endpoint?: string;
  allowedIps: string[];
  persistentKeepalive?: number;
}

const NAME_RE = /^[A-Za-z0-9_=+.-]{1,15}$/;
const SOCKET_DIR = "/var/run/wireguard";
const CAP_NET_ADMIN = 12;

export class WireGuardInterface {
  private readonly peerConfigs = new Map<string, PeerConfig>();
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;

  private constructor(
    private readonly options: InterfaceOptions,
    readonly mode: "kernel" | "userspace",
  ) {}

  get name(): string {
    return this.options.name;
  }

  /** Creates, configures and brings up the interface. */
  static async up(options: InterfaceOptions): Promise<WireGuardInterface> {
    if (!NAME_RE.test(options.name)) {
      throw new CoralError(
        "wireguard_failed",
        `"${options.name}" is not a usable interface name: at most 15 letters, digits or _=+.- characters.`,
      );
    }
    await preflight(options);
    if ((await run(options, "ip", ["link", "show", options.name])).exitCode === 0) {
      if (!(await takeOverStale(options))) {
        throw new CoralError(
          "wireguard_failed",
          `A network interface named ${options.name} already exists. Choose another name with --interface, or remove it with \`ip link del ${options.name}\`.`,
        );
      }
    }
    let mode: "kernel" | "userspace" = "userspace";
    if (options.mode !== "userspace") {
      const kernel = await run(options, "ip", ["link", "add", options.name, "type", "wireguard"]);
      if (kernel.exitCode === 0) mode = "kernel";
      else if (options.mode === "kernel")
        throw new CoralError("wireguard_missing", `The WireGuard kernel module is not available: ${kernel.stderr.trim()}.`);
    }
    const wg = new WireGuardInterface(options, mode);
    options.onEvent?.({
      kind: "mode",
      message: mode === "kernel" ? "using the WireGuard kernel module" : "using wireguard-go (no kernel module)",
    });
    try {
      if (mode === "userspace") await wg.startUserspace();
      await wg.configure();
    } catch (error) {
      await wg.down();
      throw error;
    }
    return wg;
  }

  /** Adds or updates a peer. */
  async setPeer(peer: PeerConfig): Promise<void> {
    this.peerConfigs.set(peer.publicKey, peer);
    await this.applyPeer(peer);
  }

  /** Adds or updates many peers in one `wg set` (restoring a hub's agents at start). */
  async setPeers(peers: readonly PeerConfig[]): Promise<void> {
    // One wg call per chunk keeps argv well under ARG_MAX whatever the mesh's size.
    for (let i = 0; i < peers.length; i += 2_000) {
      const chunk = peers.slice(i, i + 2_000);
      for (const peer of chunk) this.peerConfigs.set(peer.publicKey, peer);
      await this.wg(["set", this.name, ...chunk.flatMap(peerArgs)]);
    }
  }

  async removePeer(publicKey: string): Promise<void> {
    this.peerConfigs.delete(publicKey);
    await this.wg(["set", this.name, "peer", publicKey, "remove"]);
  }

  /** The interface and peer table, as WireGuard reports them. */
  async status(): Promise<InterfaceStatus> {
    return parseDump(await this.wg(["show", this.name, "dump"]));
  }

  /** Removes the interface (and stops wireguard-go). Safe to call twice. */
  async down(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    }
    await run(this.options, "ip", ["link", "del", this.name]);
  }

  private async startUserspace(): Promise<void> {
    const { name } = this.options;
    const [command, args] = inNamespace(this.options, "wireguard-go", ["-f", name]);
    const env = { ...process.env };
    // wireguard-go re-execs itself when this is set to anything but 1 (see REFERENCE).
    delete env.WG_PROCESS_FOREGROUND;
    // Its own process group: Ctrl-C in a terminal signals the whole foreground group, and
    // wireguard-go must outlive that long enough for down() to stop it in order.
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"], env, detached: true });
    this.child = child;
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2_000);
    });
    child.once("exit", (code, signal) => {
      if (this.stopping || this.child !== child) return;
      this.options.onEvent?.({ kind: "exited", message: `wireguard-go for ${name} exited (${signal ?? `code ${code}`}); restarting` });
      void this.restart();
    });
    const socket = `${SOCKET_DIR}/${name}.sock`;
    const deadline = Date.now() + 5_000;
    while (!existsSync(socket) || (await run(this.options, "ip", ["link", "show", name])).exitCode !== 0) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new CoralError(
          "wireguard_failed",
          `wireguard-go could not create ${name}: ${stderr.trim() || `exit code ${child.exitCode}`}.`,
        );
      }
      if (Date.now() > deadline)
        throw new CoralError("wireguard_failed", `wireguard-go did not create ${name} within 5 s: ${stderr.trim() || "no output"}.`);
      await sleep(20);
    }
  }

  /** Brings wireguard-go back after it died, with backoff, and puts its configuration back. */
  private async restart(): Promise<void> {
    while (!this.stopping) {
      const delay = Math.min(5_000, 250 * 2 ** Math.min(this.restarts, 5));
      this.restarts++;
      await sleep(delay);
      if (this.stopping) return;
      try {
        await run(this.options, "ip", ["link", "del", this.name]);
        await this.startUserspace();
        await this.configure();
        this.restarts = 0;
        this.options.onEvent?.({ kind: "restarted", message: `wireguard-go for ${this.name} restarted and reconfigured` });
        return;
      } catch (error) {
        this.options.onEvent?.({ kind: "restart-failed", message: error instanceof Error ? error.message : String(error) });
      }
    }
  }

  private async configure(): Promise<void> {
    const { name, privateKey, listenPort, address } = this.options;
    // `wg` reads the key from a file. Node's stdio pipes are sockets, which /dev/stdin cannot
    // open, so the key goes through a file of our own: mode 0600 in a 0700 directory, removed at once.
    const dir = mkdtempSync(join(tmpdir(), "coral-wg-"));
    try {
      const keyFile = join(dir, "private.key");
      writeFileSync(keyFile, `${privateKey}\n`, { mode: 0o600 });
      await this.wg(["set", name, "private-key", keyFile, ...(listenPort ? ["listen-port", String(listenPort)] : [])]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await this.ip(["address", "add", address, "dev", name]);
    await this.ip(["link", "set", name, "up"]);
    for (const route of this.options.routes ?? []) await this.ip(["route", "replace", route, "dev", name]);
    if (this.peerConfigs.size > 0) await this.setPeers([...this.peerConfigs.values()]);
  }

  private async applyPeer(peer: PeerConfig): Promise<void> {
    await this.wg(["set", this.name, ...peerArgs(peer)]);
  }

  private async wg(args: string[]): Promise<string> {
    return checked(this.options, "wg", args);
  }

  private async ip(args: string[]): Promise<string> {
    return checked(this.options, "ip", args);
  }
}

/**
 * An interface of our name that holds our own private key was left by an earlier run of
 * the same node that did not stop cleanly (kill -9, a crash): remove it, and let its
 * wireguard-go exit, so this run starts clean. Anyone else's interface is left alone.
 */
async function takeOverStale(options: InterfaceOptions): Promise<boolean> {
  const key = await run(options, "wg", ["show", options.name, "private-key"]);
  if (key.exitCode !== 0 || key.stdout.trim() !== options.privateKey) return false;
  await run(options, "ip", ["link", "del", options.name]);
  const socket = `${SOCKET_DIR}/${options.name}.sock`;
  const deadline = Date.now() + 3_000;
  while (existsSync(socket) && Date.now() < deadline) await sleep(20);
  rmSync(socket, { force: true });
  options.onEvent?.({ kind: "replaced", message: `removed ${options.name}, left behind by an earlier run with the same key` });
  return true;
}

function peerArgs(peer: PeerConfig): string[] {
  const args = ["peer", peer.publicKey, "allowed-ips", peer.allowedIps.join(",")];
  if (peer.endpoint) args.push("endpoint", peer.endpoint);
  if (peer.persistentKeepalive !== undefined) args.push("persistent-keepalive", String(peer.persistentKeepalive));
  return args;
}

/**
 * Whether this process can run WireGuard at all (root or CAP_NET_ADMIN, `wg` and `ip`,
 * and `wireguard-go` when asked for userspace); throws a CoralError saying what is
 * missing and how to install it. Call it before anything that should not happen in vain,
 * such as spending an invite.
 */
export async function checkWireGuard(options: Pick<InterfaceOptions, "mode"> = {}): Promise<void> {
  await preflight(options);
}

async function preflight(options: Pick<InterfaceOptions, "mode">): Promise<void> {
  if (!hasNetAdmin()) {
    throw new CoralError(
      "wireguard_permission",
      "WireGuard needs root or CAP_NET_ADMIN: run with sudo, or grant the capability (setcap cap_net_admin+ep).",
    );
  }
  // Looked up on PATH rather than run: a start-up that spawns a process per tool is slower.
  const missing = [];
  for (const [tool, pkg] of [
    ["wg", "wireguard-tools"],
    ["ip", "iproute2"],
  ] as const) {
    if (!onPath(tool)) missing.push(pkg);
  }
  if (options.mode === "userspace" && !onPath("wireguard-go")) missing.push("wireguard-go");
  if (missing.length > 0) {
    throw new CoralError(
      "wireguard_missing",
      `WireGuard tools are missing: install ${missing.join(" and ")} (Debian/Ubuntu: apt-get install ${missing.join(" ")}).`,
    );
  }
}

/** Whether an executable of this name is on PATH. */
function onPath(tool: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    if (!dir) return false;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function hasNetAdmin(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    return capEff !== undefined && (BigInt(`0x${capEff}`) & (1n << BigInt(CAP_NET_ADMIN))) !== 0n;
  } catch {
    return false;
  }
}

function inNamespace(options: InterfaceOptions, command: string, args: string[]): [string, string[]] {
  return options.netns ? ["ip", ["netns", "exec", options.netns, command, ...args]] : [command, args];
}

async function run(options: InterfaceOptions, command: string, args: string[]) {
  const [cmd, fullArgs] = inNamespace(options, command, args);
  return execa(cmd, fullArgs, { reject: false });
}

async function checked(options: InterfaceOptions, command: string, args: string[]): Promise<string> {
  const result = await run(options, command, args);
  if (result.exitCode !== 0) {
    throw new CoralError(
      "wireguard_failed",
      `\`${command} ${args.join(" ")}\` failed: ${result.stderr.trim() || `exit code ${result.exitCode}`}.`,
    );
  }
  return result.stdout;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
