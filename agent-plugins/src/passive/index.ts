/**
 * The `passive` collector: what a host runs, seen from /proc alone, with no privileges
 * beyond reading it.
 *
 * - Processes grouped into services: the systemd unit where there is one, otherwise the
 *   executable (plus the script, for interpreters such as node or python).
 * - Events: process.started, process.exited, process.restarted (the same service, a new
 *   pid and start time, within one interval), service.deployed (restarted on a different
 *   executable file), port.opened and port.closed.
 * - Metrics: host CPU, memory and load; per service CPU, resident memory and process count.
 * - Connections: established TCP connections, from the side that opened them (the local
 *   port is not one the host listens on), so the coordinator can draw the dependency graph.
 *
 * The first collect takes stock: it reports each service once (service.observed) but no
 * process events, since the processes already running are the baseline, not news.
 */
import { createHash } from "node:crypto";
import { type Stats, statSync } from "node:fs";
import { basename, join } from "node:path";
import * as z from "zod";
import { definePlugin, PLUGIN_API_VERSION, type PluginContext, type PluginStateStore, type Subject } from "../contract.js";
import { type ProcessInfo, ProcReader, parseLoadavg, parseMeminfo, parseProcStat, readProcFile, type Socket } from "./proc.js";

const INTERPRETERS = /^(node|nodejs|bun|deno|python\d*(\.\d+)?|ruby|perl|php|java|dotnet|bash|sh|dash)$/;
const SCRIPT = /\/|\.(m?js|cjs|ts|mts|py|rb|pl|php|jar|sh)$/;
const PAGE_SIZE = 4096;
const CLOCK_TICKS = 100;

const options = z.strictObject({
  /** Only processes whose command name or executable matches one of these (regular expressions). */
  include: z.array(z.string()).default([]),
  /** Leave out processes whose command name or executable matches one of these. */
  exclude: z.array(z.string()).default([]),
  /** Report established TCP connections (the dependency graph). */
  connections: z.boolean().default(true),
});
type Options = z.infer<typeof options>;

interface Seen {
  pid: number;
  startTime: number;
  service: string;
  serviceName: string;
  exe: string | undefined;
  exeId: string | undefined;
  cpuTicks: number;
  rssBytes: number;
}

interface Snapshot {
  at: number;
  processes: Map<string, Seen>;
  ports: Map<string, Set<string>>;
  hostCpu: { busy: number; total: number } | undefined;
  /** Every service seen so far (reported once, as service.observed). */
  services: Set<string>;
  reader: ProcReader;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/**
 * A service's identity: its systemd unit; for an interpreter (node, python, java...), the
 * interpreter's name and its script; otherwise its executable. `artifact` is the file whose
 * replacement is a deploy: the script of an interpreter, else the executable.
 */
export function serviceOf(p: ProcessInfo): { key: string; name: string; artifact: string | undefined } {
  const exe = (p.exe ?? p.cmdline[0] ?? p.comm).replace(/ \(deleted\)$/, "");
  const program = basename(exe);
  const script = INTERPRETERS.test(program) ? scriptOf(p.cmdline.slice(1)) : undefined;
  if (p.unit?.endsWith(".service")) return { key: `unit:${p.unit}`, name: p.unit.replace(/\.service$/, ""), artifact: script };
  if (script)
    return {
      key: bounded(`script:${program} ${script}`),
      name: basename(script).replace(/\.(m?js|cjs|ts|py|rb|pl|php|jar)$/, ""),
      artifact: script,
    };
  return { key: bounded(`exe:${exe}`), name: program, artifact: undefined };
}

/** Flags whose value is inline code: `node -e CODE`, `python -c CODE` run no script file. */
const INLINE_CODE = new Set(["-e", "--eval", "-p", "--print", "-c"]);

/**
 * The script an interpreter runs: the first argument that looks like a file path (flags'
 * values, such as the `tsx` of `--import tsx`, do not), unless inline code comes first. A
 * path under /dev (`bash /dev/fd/3`, `node /dev/stdin`) is a pipe, not a script: no file
 * names the service, and statting it from the agent would stat the agent's own descriptor.
 */
function scriptOf(args: string[]): string | undefined {
  for (const arg of args) {
    if (INLINE_CODE.has(arg)) return undefined;
    if (arg.startsWith("-")) continue;
    if (arg.startsWith("/dev/")) return undefined;
    if (SCRIPT.test(arg) && arg.length <= 255 && !/\s/.test(arg)) return arg;
  }
  return undefined;
}

/** Subject ids are at most 512 characters; a longer key keeps its start and a hash of the whole. */
function bounded(key: string): string {
  return key.length <= 512 ? key : `${key.slice(0, 480)}#${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;
}

function compile(patterns: string[]): RegExp[] {
  return patterns.map((p) => new RegExp(p));
}

export default definePlugin({
  name: "passive",
  version: "0.1.0",
  apiVersion: PLUGIN_API_VERSION,
  description: "Processes, services, ports and connections, from /proc.",
  intervalMs: 10_000,
  options,
  collect(ctx) {
    // One snapshot per running instance; the host keeps the same state store for an instance's life.
    snapshots.set(ctx.state, collect(ctx, snapshots.get(ctx.state)));
  },
  stop(ctx) {
    snapshots.get(ctx.state)?.reader.close();
    snapshots.delete(ctx.state);
  },
});

const snapshots = new WeakMap<PluginStateStore, Snapshot>();

function collect(ctx: PluginContext<Options>, previous: Snapshot | undefined): Snapshot {
  const now = ctx.clock.now();
  const include = compile(ctx.options.include);
  const exclude = compile(ctx.options.exclude);
  const wanted = (p: ProcessInfo) => {
    if (p.cmdline.length === 0) return false; // kernel threads
    if (include.length === 0 && exclude.length === 0) return true;
    const names = [p.comm, p.exe ?? ""];
    if (include.length > 0 && !include.some((re) => names.some((n) => re.test(n)))) return false;
    return !exclude.some((re) => names.some((n) => re.test(n)));
  };
  const reader = previous?.reader.procRoot === ctx.procRoot ? previous.reader : new ProcReader(ctx.procRoot);
  const processes = reader.processes().filter(wanted);

  // Current view, keyed by process identity (pid and start time).
  const current = new Map<string, Seen>();
  for (const p of processes) {
    const id = `${p.pid}:${p.startTime}`;
    const before = previous?.processes.get(id);
    if (before) {
      // Known: only what changes (CPU, memory) is new.
      current.set(id, { ...before, cpuTicks: p.utime + p.stime, rssBytes: p.rssPages * PAGE_SIZE });
      continue;
    }
    {
      const service = serviceOf(p);
      // The deployed file: a script (relative to the process's working directory), or the executable.
      const artifact = service.artifact
        ? service.artifact.startsWith("/")
          ? service.artifact
          : join(ctx.procRoot, String(p.pid), "cwd", service.artifact)
        : join(ctx.procRoot, String(p.pid), "exe");
      const exeStat = statOrUndefined(artifact);
      current.set(id, {
        pid: p.pid,
        startTime: p.startTime,
        service: service.key,
        serviceName: service.name,
        exe: p.exe,
        exeId: exeStat ? `${exeStat.dev}:${exeStat.ino}:${exeStat.mtimeMs}` : undefined,
        cpuTicks: p.utime + p.stime,
        rssBytes: p.rssPages * PAGE_SIZE,
      });
    }
  }
  const byPid = new Map([...current.values()].map((s) => [s.pid, s]));

  // Sockets: listening ports per service, and connections from the side that opened them.
  const sockets = reader.tcpSockets();
  const listeningPorts = new Set(sockets.filter((s) => s.state === "LISTEN").map((s) => s.localPort));
  // Owners matter for listening sockets and outgoing connections only: a busy server's
  // accepted connections come and go without sending anyone through every fd table.
  const outgoing = (s: Socket) => s.state === "ESTABLISHED" && ctx.options.connections && !listeningPorts.has(s.localPort);
  const owners = reader.socketOwners(
    sockets.filter((s) => s.state === "LISTEN" || outgoing(s)),
    processes.map((p) => p.pid),
  );
  const ports = new Map<string, Set<string>>();
  for (const socket of sockets) {
    const owner = byPid.get(owners.get(socket.inode) ?? -1);
    if (!owner) continue;
    if (socket.state === "LISTEN") {
      const set = ports.get(owner.service) ?? new Set<string>();
      set.add(`${socket.localAddress}:${socket.localPort}`);
      ports.set(owner.service, set);
    } else if (socket.state === "ESTABLISHED" && ctx.options.connections && !listeningPorts.has(socket.localPort)) {
      ctx.emit.connection({
        protocol: "tcp",
        localAddress: socket.localAddress,
        localPort: socket.localPort,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        pid: owner.pid,
        processName: owner.serviceName,
        subject: serviceSubject(owner),
        time: now,
      });
    }
  }

  // Each service once, when first seen: the inventory the coordinator keeps.
  const known = previous?.services ?? new Set<string>();
  const services = new Set(known);
  for (const seen of current.values()) {
    if (services.has(seen.service)) continue;
    services.add(seen.service);
    ctx.emit.event({
      kind: "service.observed",
      subject: serviceSubject(seen),
      attributes: { source: "passive", ...(seen.exe ? { exe: seen.exe.replace(/ \(deleted\)$/, "") } : {}) },
      time: now,
    });
  }
  if (previous) emitEvents(ctx, previous, current, ports, now);
  const hostCpu = emitMetrics(ctx, previous, current, now, reader.loadavgText);
  return { at: now, processes: current, ports, hostCpu, services, reader };
}

const serviceSubject = (s: Pick<Seen, "service" | "serviceName">): Subject => ({ kind: "service", id: s.service, name: s.serviceName });
const processSubject = (s: Seen): Subject => ({ kind: "process", id: `pid:${s.pid}:${s.startTime}`, name: s.serviceName });

function emitEvents(
  ctx: PluginContext<Options>,
  previous: Snapshot,
  current: Map<string, Seen>,
  ports: Map<string, Set<string>>,
  now: number,
): void {
  const started = [...current].filter(([id]) => !previous.processes.has(id)).map(([, s]) => s);
  const exited = [...previous.processes].filter(([id]) => !current.has(id)).map(([, s]) => s);
  const restartedServices = new Set<string>();

  for (const gone of exited) {
    ctx.emit.event({
      kind: "process.exited",
      subject: processSubject(gone),
      attributes: { pid: String(gone.pid), service: gone.serviceName },
      evidence: { lastSeen: previous.at, exe: gone.exe },
      time: now,
    });
  }
  for (const fresh of started) {
    ctx.emit.event({
      kind: "process.started",
      subject: processSubject(fresh),
      attributes: { pid: String(fresh.pid), service: fresh.serviceName },
      evidence: { exe: fresh.exe },
      time: now,
    });
    // The same service lost a process and gained one within an interval: a restart.
    const before = exited.find((gone) => gone.service === fresh.service);
    if (!before || restartedServices.has(fresh.service)) continue;
    restartedServices.add(fresh.service);
    ctx.emit.event({
      kind: "process.restarted",
      subject: serviceSubject(fresh),
      attributes: { oldPid: String(before.pid), newPid: String(fresh.pid) },
      evidence: { oldStartTime: before.startTime, newStartTime: fresh.startTime, between: [previous.at, now] },
      time: now,
    });
    if (before.exeId && fresh.exeId && before.exeId !== fresh.exeId) {
      ctx.emit.event({
        kind: "service.deployed",
        subject: serviceSubject(fresh),
        attributes: { exe: (fresh.exe ?? "").replace(/ \(deleted\)$/, "") },
        evidence: { oldExe: before.exe, oldExeId: before.exeId, newExe: fresh.exe, newExeId: fresh.exeId },
        time: now,
      });
    }
  }

  const services = new Set([...ports.keys(), ...previous.ports.keys()]);
  const nameOf = new Map([...current.values(), ...previous.processes.values()].map((s) => [s.service, s.serviceName]));
  for (const service of services) {
    const was = previous.ports.get(service) ?? new Set<string>();
    const is = ports.get(service) ?? new Set<string>();
    const subject = serviceSubject({ service, serviceName: nameOf.get(service) ?? service });
    for (const port of is) if (!was.has(port)) ctx.emit.event({ kind: "port.opened", subject, attributes: { address: port }, time: now });
    for (const port of was) if (!is.has(port)) ctx.emit.event({ kind: "port.closed", subject, attributes: { address: port }, time: now });
  }
}

function emitMetrics(
  ctx: PluginContext<Options>,
  previous: Snapshot | undefined,
  current: Map<string, Seen>,
  now: number,
  /** /proc/loadavg, as the process listing of this collect read it. */
  loadText: string,
): Snapshot["hostCpu"] {
  const host: Subject = { kind: "host", id: "host" };
  const read = (file: string) => readProcFile(join(ctx.procRoot, file));
  const [statText, meminfoText] = [read("stat"), read("meminfo")];
  const cpu = parseProcStat(statText);
  if (cpu && previous?.hostCpu && cpu.total > previous.hostCpu.total) {
    const busy = (cpu.busy - previous.hostCpu.busy) / (cpu.total - previous.hostCpu.total);
    ctx.emit.metric({ name: "host.cpu.utilization", value: round(busy), subject: host, time: now });
  }
  const memory = parseMeminfo(meminfoText);
  if (memory) {
    ctx.emit.metric({ name: "host.memory.available_bytes", value: memory.availableBytes, subject: host, time: now });
    ctx.emit.metric({ name: "host.memory.total_bytes", value: memory.totalBytes, subject: host, time: now });
  }
  const load = parseLoadavg(loadText);
  if (load) {
    const [load1, load5, load15] = load;
    ctx.emit.metric({ name: "host.load1", value: load1, subject: host, time: now });
    ctx.emit.metric({ name: "host.load5", value: load5, subject: host, time: now });
    ctx.emit.metric({ name: "host.load15", value: load15, subject: host, time: now });
  }

  // Per service: CPU (cores used since the last collect), resident memory, processes.
  const services = new Map<string, { seen: Seen; cpuTicks: number; processes: number; rss: number }>();
  for (const [id, seen] of current) {
    const before = previous?.processes.get(id);
    const entry = services.get(seen.service) ?? { seen, cpuTicks: 0, processes: 0, rss: 0 };
    entry.processes++;
    entry.rss += seen.rssBytes;
    if (before) entry.cpuTicks += seen.cpuTicks - before.cpuTicks;
    services.set(seen.service, entry);
  }
  const elapsedSeconds = previous ? (now - previous.at) / 1000 : 0;
  for (const { seen, cpuTicks, processes, rss } of services.values()) {
    const subject = serviceSubject(seen);
    ctx.emit.metric({ name: "service.processes", value: processes, subject, time: now });
    ctx.emit.metric({ name: "service.memory.rss_bytes", value: rss, subject, time: now });
    if (elapsedSeconds > 0)
      ctx.emit.metric({ name: "service.cpu.cores", value: round(cpuTicks / CLOCK_TICKS / elapsedSeconds), subject, time: now });
  }
  return cpu ? { busy: cpu.busy, total: cpu.total } : undefined;
}

const round = (n: number) => Math.round(n * 10_000) / 10_000;
