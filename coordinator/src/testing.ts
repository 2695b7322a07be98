/**
 * Test harness for labs (`@coral-mesh/coordinator/testing`): the real `coral` binary, from this
 * package's source (or, with `built`, its dist/ as users run it), run inside a network
 * namespace. `coral coordinator start` as a child process that the harness waits for and
 * stops with SIGTERM, and CLI commands against it.
 * Whatever it starts is killed if the test process exits first.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Node with the TypeScript loader, reading workspace packages from their source. */
export const tsxNode = [process.execPath, "--conditions=coral-source", "--import", "tsx"];

/** `ip netns exec NS node (tsx) FILE ARGS`; killed when the test process exits. */
export function spawnInNamespace(ns: string, file: string, args: string[], cwd = packageDir): ChildProcess {
  return spawnCommand(ns, [...tsxNode, file, ...args], cwd);
}

function spawnCommand(ns: string, command: string[], cwd = packageDir): ChildProcess {
  const child = spawn("ip", ["netns", "exec", ns, ...command], { cwd, stdio: ["pipe", "pipe", "pipe"] });
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  child.once("exit", () => process.off("exit", kill));
  return child;
}

/** Collects a child's stderr lines and resolves when one matches `ready`; fails if it exits first. */
export function waitForLine(child: ChildProcess, ready: RegExp, what: string, timeoutMs = 30_000): { log: string[]; ready: Promise<void> } {
  const log: string[] = [];
  const promise = new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`${what} was not ready within ${timeoutMs / 1000} s:\n${log.join("\n")}`)), timeoutMs);
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
      log.push(line);
      if (ready.test(line)) {
        clearTimeout(timer);
        done();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`${what} exited (${code}):\n${log.join("\n")}`));
    });
  });
  return { log, ready: promise };
}

/** Sends SIGTERM (or another signal) and resolves with the exit code. */
export async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill(signal);
  return exited;
}

export interface LabCoordinatorOptions {
  ns: string;
  dataDir: string;
  interfaceName: string;
  /** host:port agents reach the hub at; without it the hub advertises what it detects (and what discovery saw). */
  endpoint?: string;
  discoveryUrl?: string;
  extraArgs?: string[];
  /** Runs the built `coral` (dist/cli.js, after `npm run build`) instead of the source through tsx. */
  built?: boolean;
}

export class LabCoordinator {
  child: ChildProcess | undefined;
  log: string[] = [];

  constructor(readonly options: LabCoordinatorOptions) {}

  async start(): Promise<void> {
    const { ns, dataDir, interfaceName, endpoint, discoveryUrl, extraArgs = [] } = this.options;
    this.child = spawnCommand(ns, [
      ...this.coral,
      "coordinator",
      "start",
      "--data-dir",
      dataDir,
      "--interface",
      interfaceName,
      ...(endpoint ? ["--endpoint", endpoint] : []),
      ...(discoveryUrl ? ["--discovery", discoveryUrl] : []),
      ...extraArgs,
    ]);
    const waiting = waitForLine(this.child, / ready: /, "the coordinator");
    this.log = waiting.log;
    await waiting.ready;
  }

  stop(): Promise<number | null> {
    return stopChild(this.child);
  }

  /** The `coral` command: node and the CLI's entry. */
  get coral(): string[] {
    return this.options.built ? [process.execPath, join(packageDir, "dist", "cli.js")] : [...tsxNode, "src/cli.ts"];
  }

  /** Runs `coral ARGS --data-dir DATA` in the coordinator's namespace. */
  cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    return new Promise((done) => {
      execFile(
        "ip",
        ["netns", "exec", this.options.ns, ...this.coral, ...args, "--data-dir", this.options.dataDir],
        { cwd: packageDir },
        (error, out, err) => done({ code: error ? Number(error.code ?? 1) : 0, out, err }),
      );
    });
  }

  async json<T>(...args: string[]): Promise<T> {
    const result = await this.cli(...args, "--json");
    if (result.code !== 0) throw new Error(`coral ${args.join(" ")}: ${result.err}`);
    return JSON.parse(result.out) as T;
  }
}
