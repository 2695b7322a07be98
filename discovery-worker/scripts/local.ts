/**
 * Serves the discovery Worker locally through `wrangler dev` (workerd + a local
 * D1 file), with its migrations applied. Used by `npm start`, the benchmark, and
 * tests of other packages that need a real discovery to talk to.
 *
 *   tsx discovery-worker/scripts/local.ts [--port 8787] [--ip 127.0.0.1] [--persist-to DIR]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const wranglerBin = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");

export interface LocalDiscoveryOptions {
  /** 8787 by default; 0 picks a free port. */
  port?: number;
  ip?: string;
  /** Where the local D1 lives; a fresh temporary directory (removed on stop) by default. */
  persistTo?: string;
  /** Extra Worker variables, e.g. `{ CORAL_DEBUG_D1: "1" }`. */
  vars?: Record<string, string>;
  /** An alternative wrangler config (the benchmark raises the rate limits in one). */
  config?: string;
  /** Called with each line wrangler prints. */
  onLog?: (line: string) => void;
  startTimeoutMs?: number;
  /** Serve from inside this network namespace (labs); `ip` is then an address of that namespace. */
  netns?: string;
  /** wrangler's log level; "warn" by default, which leaves out a line per request. */
  logLevel?: "debug" | "info" | "log" | "warn" | "error" | "none";
}

export interface LocalDiscovery {
  url: string;
  persistTo: string;
  stop(): Promise<void>;
}

function runWrangler(args: string[], onLog?: (line: string) => void, netns?: string): ChildProcess {
  // `ip netns exec` execs the command in place, so the pid (and process group) stays wrangler's.
  const [command, argv] = netns
    ? ["ip", ["netns", "exec", netns, process.execPath, wranglerBin, ...args]]
    : [process.execPath, [wranglerBin, ...args]];
  const child = spawn(command, argv, {
    cwd: repoRoot,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", CI: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let pending = "";
  const forward = (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) onLog?.(line);
  };
  child.stdout?.on("data", forward);
  child.stderr?.on("data", forward);
  return child;
}

async function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  return new Promise((resolveExit) => child.once("exit", (code) => resolveExit(code)));
}

/** A port nothing listens on right now (wrangler dev cannot be asked to pick one itself). */
async function freePort(ip: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, ip, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolvePort(port));
    });
  });
}

export async function startLocalDiscovery(options: LocalDiscoveryOptions = {}): Promise<LocalDiscovery> {
  const ip = options.ip ?? "127.0.0.1";
  if (options.netns && options.port === 0) throw new Error("startLocalDiscovery: give a port when serving in a network namespace");
  const port = options.port === 0 ? await freePort(ip) : (options.port ?? 8787);
  const ownDir = options.persistTo === undefined;
  const persistTo = options.persistTo ?? mkdtempSync(join(tmpdir(), "coral-discovery-"));
  const log: string[] = [];
  const onLog = (line: string) => {
    log.push(line);
    if (log.length > 60) log.shift();
    options.onLog?.(line);
  };
  const configArgs = options.config ? ["--config", options.config] : [];

  const migrate = runWrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo, ...configArgs], onLog);
  if ((await exited(migrate)) !== 0) {
    throw new Error(`applying the D1 migrations failed:\n${log.join("\n")}`);
  }

  const vars = Object.entries(options.vars ?? {}).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  // wrangler's devtools port is 9229 unless told: two local Workers starting at once (test files
  // run in parallel) would race for it, and the loser fails with "Address already in use".
  const inspectorPort = await freePort("127.0.0.1");
  const dev = runWrangler(
    [
      "dev",
      "--log-level",
      options.logLevel ?? "warn",
      "--ip",
      ip,
      "--port",
      String(port),
      "--persist-to",
      persistTo,
      "--show-interactive-dev-session=false",
      "--inspector-port",
      String(inspectorPort),
      ...configArgs,
      ...vars,
    ],
    onLog,
    options.netns,
  );
  const host = ip.includes(":") ? `[${ip}]` : ip;
  const url = `http://${ip === "0.0.0.0" ? "127.0.0.1" : host}:${port}`;
  // wrangler runs in its own process group (so that stop() can end workerd with it);
  // make sure that group does not outlive this process, however it ends.
  const killGroup = () => {
    if (dev.exitCode === null && dev.pid !== undefined) {
      try {
        process.kill(-dev.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  };
  process.once("exit", killGroup);
  const stop = async () => {
    process.removeListener("exit", killGroup);
    if (dev.exitCode === null && dev.pid !== undefined) {
      try {
        process.kill(-dev.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
      const timer = setTimeout(() => dev.pid !== undefined && process.kill(-dev.pid, "SIGKILL"), 5_000);
      await exited(dev);
      clearTimeout(timer);
    }
    if (ownDir) rmSync(persistTo, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (dev.exitCode !== null) break;
    if (await healthy(url, options.netns)) return { url, persistTo, stop };
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`wrangler dev did not serve ${url}/v1/health in time:\n${log.join("\n")}`);
}

/** Whether discovery answers its health route, asked from inside `netns` when given. */
async function healthy(url: string, netns?: string): Promise<boolean> {
  if (!netns) {
    try {
      return (await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(1_000) })).ok;
    } catch {
      return false; // Not listening yet.
    }
  }
  const probe = `fetch(${JSON.stringify(`${url}/v1/health`)}, { signal: AbortSignal.timeout(1000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`;
  const child = spawn("ip", ["netns", "exec", netns, process.execPath, "-e", probe], { stdio: "ignore" });
  return (await exited(child)) === 0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { port: { type: "string", default: "8787" }, ip: { type: "string", default: "127.0.0.1" }, "persist-to": { type: "string" } },
  });
  const persistTo = values["persist-to"] ?? join(repoRoot, ".wrangler", "coral-local");
  process.stdout.write(`Starting the discovery Worker locally (workerd + local D1 in ${persistTo})...\n`);
  const discovery = await startLocalDiscovery({ port: Number(values.port), ip: values.ip, persistTo });
  const health = await (await fetch(`${discovery.url}/v1/health`)).json();
  process.stdout.write(`Discovery is serving at ${discovery.url}  (${JSON.stringify(health)})\n`);
  process.stdout.write("Press Ctrl-C to stop.\n");
  const shutdown = () => {
    process.stdout.write("\nStopping discovery...\n");
    void discovery.stop().then(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`coral: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
