/**
 * A WireGuard interface: the kernel module where there is one, driven through `wg` and
 * `ip`, otherwise a supervised `wireguard-go` that is restarted (and reconfigured) if it
 * dies, configured through its socket. Private keys never appear in argv or logs.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { CoralError } from "@coral-mesh/sdk-proto";
import { type InterfaceStatus, parseDump } from "./dump.js";
import { describeOwner, portInUse, udpPortFree, wireguardGoFor } from "./owner.js";
import { toHex, UapiConnection, UapiError, uapiRequest, uapiSocket, uapiStatus } from "./uapi.js";

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
const CAP_NET_ADMIN = 12;

export class WireGuardInterface {
  private readonly peerConfigs = new Map<string, PeerConfig>();
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;

  /** wireguard-go's socket, one connection for all requests. */
  private readonly uapi: UapiConnection;

  private constructor(
    private readonly options: InterfaceOptions,
    readonly mode: "kernel" | "userspace",
  ) {
    this.uapi = new UapiConnection(uapiSocket(options.name));
  }

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
    // Both checks without a process where they can be made, so that wireguard-go starts at
    // once (and meanwhile the caller's own work gets the CPU).
    if (await linkExists(options)) {
      if (!(await takeOverStale(options))) throw await interfaceInUse(options);
    }
    // (Inside a namespace of its own, the port is checked there, by wireguard-go's answer.)
    if (options.listenPort && !options.netns && !(await udpPortFree(options.listenPort))) throw portInUse(options.listenPort);
    let mode: "kernel" | "userspace" = "userspace";
    if (options.mode === "kernel" || (options.mode !== "userspace" && kernelModuleAvailable())) {
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
    // wireguard-go is spawned as startUserspace() is called; `ip` is started just after it and
    // gets its commands once the interface exists. Starting a process takes about 10 ms here,
    // which is then spent while wireguard-go starts, not after.
    const userspace = mode === "userspace" ? wg.startUserspace() : undefined;
    const ip = launch(options, "ip", ["-batch", "-"]);
    try {
      await userspace;
      await wg.configure(ip);
    } catch (error) {
      ip.cancel();
      await wg.down();
      throw error;
    }
    return wg;
  }

  /** Adds or updates a peer. */
  async setPeer(peer: PeerConfig): Promise<void> {
    this.peerConfigs.set(peer.publicKey, peer);
    if (this.mode === "userspace") await this.uapiSet(peerLines(peer));
    else await this.wg(["set", this.name, ...peerArgs(peer)]);
  }

  /** Adds or updates many peers in one request (restoring a hub's agents at start). */
  async setPeers(peers: readonly PeerConfig[]): Promise<void> {
    for (const peer of peers) this.peerConfigs.set(peer.publicKey, peer);
    if (this.mode === "userspace") {
      if (peers.length > 0) await this.uapiSet(peers.flatMap(peerLines));
      return;
    }
    // One wg call per chunk keeps argv well under ARG_MAX whatever the mesh's size.
    for (let i = 0; i < peers.length; i += 2_000) await this.wg(["set", this.name, ...peers.slice(i, i + 2_000).flatMap(peerArgs)]);
  }

  async removePeer(publicKey: string): Promise<void> {
    this.peerConfigs.delete(publicKey);
    checkKey(publicKey);
    if (this.mode === "userspace") await this.uapiSet([`public_key=${toHex(publicKey)}`, "remove=true"]);
    else await this.wg(["set", this.name, "peer", publicKey, "remove"]);
  }

  /** The interface and peer table, as WireGuard reports them. */
  async status(): Promise<InterfaceStatus> {
    if (this.mode === "kernel") return parseDump(await this.wg(["show", this.name, "dump"]));
    try {
      return await uapiStatus(this.uapi);
    } catch (error) {
      throw uapiFailure(this.name, "reading its status", error);
    }
  }

  /** Removes the interface (and stops wireguard-go). Safe to call twice. */
  async down(): Promise<void> {
    this.stopping = true;
    this.uapi.close();
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
    const socket = uapiSocket(name);
    if (existsSync(socket)) {
      // Left by a wireguard-go that was killed (it went with its interface), or served by a
      // live one for an interface of this name in another namespace.
      if (await answers(socket)) {
        throw new CoralError(
          "wireguard_failed",
          `${socket} is in use: another wireguard-go serves an interface named ${name}, perhaps in another network namespace. Choose another name with --interface.`,
        );
      }
      rmSync(socket, { force: true });
    }
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
    // wireguard-go creates the device, then this socket: once it is there, both are.
    const deadline = Date.now() + 5_000;
    while (!existsSync(socket)) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new CoralError(
          "wireguard_failed",
          `wireguard-go could not create ${name}: ${stderr.trim() || `exit code ${child.exitCode}`}.`,
        );
      }
      if (Date.now() > deadline)
        throw new CoralError("wireguard_failed", `wireguard-go did not create ${name} within 5 s: ${stderr.trim() || "no output"}.`);
      await sleep(5);
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

  /** Sets the key and port, then the address, link and routes, through `ip` (one started already, or a new one). */
  private async configure(ip = launch(this.options, "ip", ["-batch", "-"])): Promise<void> {
    const { name, privateKey, listenPort, address } = this.options;
    if (this.mode === "userspace") {
      // The first request after a start: wireguard-go's socket file exists from when it is bound,
      // a moment before it listens, and a connection refused in between means "not yet".
      try {
        await this.uapiSet([`private_key=${toHex(privateKey)}`, ...(listenPort ? [`listen_port=${listenPort}`] : [])], 1_000);
      } catch (error) {
        // EADDRINUSE: taken between the check in up() and now, or checked in another namespace.
        if (listenPort && (error as CoralError).cause instanceof UapiError && ((error as CoralError).cause as UapiError).code === "-98")
          throw portInUse(listenPort);
        throw error;
      }
    } else {
      // `wg` reads the key from a file. Node's stdio pipes are sockets, which /dev/stdin cannot
      // open, so the key goes through a file of our own: mode 0600 in a 0700 directory, removed at once.
      const dir = mkdtempSync(join(tmpdir(), "coral-wg-"));
      try {
        const keyFile = join(dir, "private.key");
        writeFileSync(keyFile, `${privateKey}\n`, { mode: 0o600 });
        await this.wg(["set", name, "private-key", keyFile, ...(listenPort ? ["listen-port", String(listenPort)] : [])]).catch((error) => {
          if (listenPort && /address already in use/i.test(String((error as Error).message))) throw portInUse(listenPort);
          throw error;
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    // One `ip` for all of it: each process spawned costs about 10 ms.
    const commands = [
      `address add ${address} dev ${name}`,
      `link set ${name} up`,
      ...(this.options.routes ?? []).map((route) => `route replace ${route} dev ${name}`),
    ];
    ensureSuccess("ip -batch -", await ip.finish(`${commands.join("\n")}\n`));
    if (this.peerConfigs.size > 0) await this.setPeers([...this.peerConfigs.values()]);
  }

  /** A `set` request; a refused connection is tried again, every 5 ms, for up to `refusedForMs`. */
  private async uapiSet(lines: string[], refusedForMs = 0): Promise<void> {
    const deadline = Date.now() + refusedForMs;
    for (;;) {
      try {
        await this.uapi.request(["set=1", ...lines]);
        return;
      } catch (error) {
        if ((error as UapiError).code !== "ECONNREFUSED" || Date.now() >= deadline) throw uapiFailure(this.name, "configuring it", error);
        await sleep(5);
      }
    }
  }

  private async wg(args: string[]): Promise<string> {
    return checked(this.options, "wg", args);
  }
}

function uapiFailure(name: string, what: string, error: unknown): CoralError {
  const detail = error instanceof UapiError ? error.message : String(error);
  return new CoralError(
    "wireguard_failed",
    `wireguard-go for ${name} failed ${what}: ${detail}. If it exited, its restart is logged; \`ip link show ${name}\` shows whether the interface is there.`,
    { cause: error },
  );
}

/**
 * Refuses a start whose interface name is taken, saying by whom. Removing the interface is
 * suggested only where no live process can be serving it.
 */
async function interfaceInUse(options: InterfaceOptions): Promise<CoralError> {
  const { name } = options;
  const next = "Stop that one first, or start this one with another --interface (and another --listen-port).";
  const server = wireguardGoFor(name);
  if (server) {
    return new CoralError(
      "interface_in_use",
      `The WireGuard interface ${name} is in use: it is served by ${describeOwner(server)}, so another coordinator or agent runs on this host with it. ${next}`,
    );
  }
  if ((await run(options, "wg", ["show", name, "listen-port"])).exitCode === 0) {
    // The kernel's WireGuard: no process serves it, and it outlives one that was killed.
    return new CoralError(
      "interface_in_use",
      `A WireGuard interface named ${name} already exists, with another key: a coordinator or agent on this host may run with it (\`wg show ${name}\` lists its peers). ${next} Only if none runs with it, \`ip link del ${name}\` removes it.`,
    );
  }
  return new CoralError(
    "interface_in_use",
    `A network interface named ${name} already exists and is not a WireGuard interface; choose another name with --interface.`,
  );
}

/**
 * The checks of WireGuardInterface.up() that can refuse a start, made before anything is
 * created: the interface name is free (or is this key's own, left by an earlier run that
 * did not stop cleanly), and so is the UDP port. `privateKey` is absent before the first
 * start, when no interface can be ours.
 */
export async function checkInterfaceFree(options: { name: string; listenPort?: number; privateKey?: string }): Promise<void> {
  const opts: InterfaceOptions = { name: options.name, privateKey: options.privateKey ?? "", address: "" };
  if (await linkExists(opts)) {
    const key = options.privateKey ? await run(opts, "wg", ["show", options.name, "private-key"]) : undefined;
    if (key?.exitCode === 0 && key.stdout.trim() === options.privateKey) return; // up() takes it over, port and all
    throw await interfaceInUse(opts);
  }
  if (options.listenPort && !(await udpPortFree(options.listenPort))) throw portInUse(options.listenPort);
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
  const socket = uapiSocket(options.name);
  const deadline = Date.now() + 3_000;
  while (existsSync(socket) && Date.now() < deadline) await sleep(20);
  rmSync(socket, { force: true });
  options.onEvent?.({ kind: "replaced", message: `removed ${options.name}, left behind by an earlier run with the same key` });
  return true;
}

/** Whether the interface exists: in our own namespace, /proc/net/dev (which is per namespace) lists it. */
async function linkExists(options: InterfaceOptions): Promise<boolean> {
  if (options.netns) return (await run(options, "ip", ["link", "show", options.name])).exitCode === 0;
  return readFileSync("/proc/net/dev", "utf8")
    .split("\n")
    .some((line) => line.slice(0, line.indexOf(":")).trim() === options.name);
}

/**
 * Whether WireGuard is in this kernel or can be loaded into it: loaded or built in (it is
 * then in /sys/module), or a module file for this kernel, which `ip link add` would load.
 * Without either, trying `ip link add` only costs time.
 */
function kernelModuleAvailable(): boolean {
  if (existsSync("/sys/module/wireguard")) return true;
  try {
    return /\/wireguard\.ko/.test(readFileSync(`/lib/modules/${release()}/modules.dep`, "utf8"));
  } catch {
    return false;
  }
}

/** Whether a wireguard-go answers on this socket. */
async function answers(socket: string): Promise<boolean> {
  try {
    await uapiRequest(socket, ["get=1"], 1_000);
    return true;
  } catch {
    return false;
  }
}

/**
 * A peer in wireguard-go's configuration protocol: its allowed IPs replace any it had. Every
 * value is checked first, since in a line protocol a newline in one (an endpoint that came
 * from discovery, say) would be a request of its own.
 */
function peerLines(peer: PeerConfig): string[] {
  checkPeer(peer);
  const lines = [`public_key=${toHex(peer.publicKey)}`];
  if (peer.endpoint) lines.push(`endpoint=${peer.endpoint}`);
  if (peer.persistentKeepalive !== undefined) lines.push(`persistent_keepalive_interval=${peer.persistentKeepalive}`);
  lines.push("replace_allowed_ips=true", ...peer.allowedIps.map((ip) => `allowed_ip=${ip}`));
  return lines;
}

function checkPeer(peer: PeerConfig): void {
  const bad = (what: string, value: unknown) =>
    new CoralError("wireguard_failed", `Refusing a WireGuard peer whose ${what} is malformed: ${JSON.stringify(value)}.`);
  checkKey(peer.publicKey);
  if (peer.endpoint !== undefined && !ENDPOINT_RE.test(peer.endpoint)) throw bad("endpoint (ip:port)", peer.endpoint);
  for (const ip of peer.allowedIps) if (!PREFIX_RE.test(ip)) throw bad("allowed IP (address/prefix)", ip);
  const keepalive = peer.persistentKeepalive;
  if (keepalive !== undefined && !(Number.isInteger(keepalive) && keepalive >= 0 && keepalive <= 65_535)) {
    throw bad("keepalive interval", keepalive);
  }
}

function checkKey(publicKey: string): void {
  if (!KEY_RE.test(publicKey)) {
    throw new CoralError(
      "wireguard_failed",
      `Refusing a WireGuard key that is malformed (not 32 bytes of base64): ${JSON.stringify(publicKey)}.`,
    );
  }
}

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const ENDPOINT_RE = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/;
const PREFIX_RE = /^[0-9A-Fa-f:.]+\/\d{1,3}$/;

function peerArgs(peer: PeerConfig): string[] {
  checkPeer(peer);
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

interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A tool started (in the namespace, if any) that waits for its standard input. */
interface Launched {
  /** Writes its input, closes it, and waits for the tool to end; never rejects: a tool that could not start exits 127. */
  finish(input?: string): Promise<RunResult>;
  /** Closes its input unwritten, for a tool that is no longer needed. */
  cancel(): void;
}

function launch(options: InterfaceOptions, command: string, args: string[]): Launched {
  const [cmd, fullArgs] = inNamespace(options, command, args);
  let child: ChildProcess;
  const result = new Promise<RunResult>((resolve) => {
    child = execFile(cmd, fullArgs, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve({ exitCode: 0, stdout, stderr });
      const exitCode = typeof error.code === "number" ? error.code : 127;
      resolve({ exitCode, stdout, stderr: stderr || error.message });
    });
    child.stdin?.on("error", () => {}); // a tool that exits early closes its end; its exit code says why
  });
  return {
    finish: (input) => {
      child.stdin?.end(input);
      return result;
    },
    cancel: () => child.stdin?.end(),
  };
}

/** Runs a tool (in the namespace, if any) to its end; never rejects: a tool that could not start exits 127. */
function run(options: InterfaceOptions, command: string, args: string[], input?: string): Promise<RunResult> {
  return launch(options, command, args).finish(input);
}

async function checked(options: InterfaceOptions, command: string, args: string[], input?: string): Promise<string> {
  return ensureSuccess(`${command} ${args.join(" ")}`, await run(options, command, args, input));
}

function ensureSuccess(commandLine: string, result: RunResult): string {
  if (result.exitCode !== 0) {
    throw new CoralError("wireguard_failed", `\`${commandLine}\` failed: ${result.stderr.trim() || `exit code ${result.exitCode}`}.`);
  }
  return result.stdout;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
