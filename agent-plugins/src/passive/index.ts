/**
 * The `passive` collector: what a host runs, seen from /proc alone, with no privileges
 * beyond reading it.
 *
 * - Processes grouped into services: the systemd unit where there is one, otherwise the
 *   executable (plus the script, for interpreters such as node or python).
 * - Only service instances (see classify) are reported one by one. Every other process is
 *   transient (a `sleep`, an `sh -c`): it is counted, per collect, under the nearest service
 *   above it (service.transient_processes), and nothing else.
 * - Events: process.started, process.exited, process.restarted (the same service, a new
 *   pid and start time, within one interval), service.deployed (restarted on a different
 *   executable file), port.opened and port.closed, service.oom_killed (the kernel killed
 *   processes of the service's own memory cgroup at its limit).
 * - Metrics: host CPU, memory, load and disk space per data filesystem; per service CPU,
 *   resident memory, process count, the transient processes it started, and its memory
 *   cgroup's limit.
 * - Connections: established TCP connections, from the side that opened them (the local
 *   port is not one the host listens on), so the coordinator can draw the dependency graph.
 *
 * The first collect takes stock: it reports each service once (service.observed) but no
 * process events, since the processes already running are the baseline, not news.
 */
import { type Stats, statSync } from "node:fs";
import { join } from "node:path";
import * as z from "zod";
import { definePlugin, PLUGIN_API_VERSION, type PluginContext, type PluginStateStore, type Subject } from "../contract.js";
import { type ProcessInfo, ProcReader, parseLoadavg, parseMeminfo, parseProcStat, parseUptime, readProcFile, type Socket } from "./proc.js";
import { readCgroupMemory, readDisks } from "./resources.js";
import { Lineages, serviceOf } from "./services.js";

export { serviceOf } from "./services.js";

const PAGE_SIZE = 4096;
const CLOCK_TICKS = 100;

const pattern = z.string().refine(isPattern, "not a valid regular expression");

const options = z.strictObject({
  /** Only processes whose command name or executable matches one of these (regular expressions). */
  include: z.array(pattern).default([]),
  /** Leave out processes whose command name or executable matches one of these. */
  exclude: z.array(pattern).default([]),
  /** Report established TCP connections (the dependency graph). */
  connections: z.boolean().default(true),
  /** A process that has run this long is a service instance; 0 makes every process one. */
  serviceAfterMs: z.number().int().min(0).default(60_000),
  /**
   * Services the user names: a process whose command name, executable or command line
   * matches `match` (a regular expression) is a service instance from its start, shown as `name`.
   */
  services: z.array(z.strictObject({ name: z.string().min(1).max(256), match: pattern })).default([]),
  /** Disk space of the host's data filesystems (ext4, xfs, btrfs, NFS...), and of these mount points whatever their type. */
  disks: z.boolean().default(true),
  mounts: z.array(z.string().startsWith("/")).default([]),
  /** Where cgroups are mounted: each service's memory limit and OOM kills come from its memory cgroup (v2, or v1 on hybrid hosts). */
  cgroupRoot: z.string().startsWith("/").default("/sys/fs/cgroup"),
});
type Options = z.infer<typeof options>;

function isPattern(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

interface Seen {
  pid: number;
  ppid: number;
  startTime: number;
  service: string;
  serviceName: string;
  /** The program's own name (see serviceOf), for the transient processes' label. */
  command: string;
  exe: string | undefined;
  exeId: string | undefined;
  /** Its memory cgroup's directory (see memoryCgroup), where it has its own. */
  cgroup: string | undefined;
  cpuTicks: number;
  rssBytes: number;
  /** Its lineage (see Lineages); undefined for a child of its own service, which no lineage makes a service. */
  lineage: string | undefined;
  /** A service instance from its start: a systemd service's main process, or one the user named. */
  declared: boolean;
  /** A service instance (see classify): once one, one for the rest of its life. */
  instance: boolean;
  /** Seen at the first collect, where its start is not news. */
  baseline: boolean;
}

interface Snapshot {
  at: number;
  processes: Map<string, Seen>;
  ports: Map<string, Set<string>>;
  hostCpu: { busy: number; total: number } | undefined;
  /** Every service seen so far (reported once, as service.observed). */
  services: Set<string>;
  lineages: Lineages;
  /** The subjects of the last collect's non-zero service.transient_processes, by id. */
  transient: Map<string, Subject>;
  /** The OOM kills of each cgroup with a process in it, as last read (a cgroup counts them from its creation). */
  oomKills: Map<string, number>;
  reader: ProcReader;
}

/**
 * The sockets a service listens on as it is first observed, `0.0.0.0:5432,:::5432`: the
 * coordinator resolves other agents' connections by them (later changes are port.opened and
 * port.closed). An attribute holds 1,024 characters; a service with more sockets lists what fits.
 */
function listeningAttribute(sockets: Set<string> | undefined): { listening?: string } {
  if (!sockets || sockets.size === 0) return {};
  let listening = "";
  for (const socket of [...sockets].sort()) {
    const next = listening ? `${listening},${socket}` : socket;
    if (next.length > 1_024) break;
    listening = next;
  }
  return { listening };
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

interface Compiled {
  include: RegExp[];
  exclude: RegExp[];
  services: { name: string; match: RegExp }[];
}

/** The options' regular expressions, compiled once per options object. */
const compiledOptions = new WeakMap<Options, Compiled>();
function compiled(options: Options): Compiled {
  let done = compiledOptions.get(options);
  if (!done) {
    done = {
      include: options.include.map((p) => new RegExp(p)),
      exclude: options.exclude.map((p) => new RegExp(p)),
      services: options.services.map((s) => ({ name: s.name, match: new RegExp(s.match) })),
    };
    compiledOptions.set(options, done);
  }
  return done;
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

const HOST: Subject = { kind: "host", id: "host" };
/** How far up the parent chain a transient process's service is looked for. */
const MAX_ANCESTORS = 64;

function collect(ctx: PluginContext<Options>, previous: Snapshot | undefined): Snapshot {
  const now = ctx.clock.now();
  const { include, exclude, services: named } = compiled(ctx.options);
  const wanted = (p: ProcessInfo) => {
    if (p.cmdline.length === 0) return false; // kernel threads
    if (include.length === 0 && exclude.length === 0) return true;
    const names = [p.comm, p.exe ?? ""];
    if (include.length > 0 && !include.some((re) => names.some((n) => re.test(n)))) return false;
    return !exclude.some((re) => names.some((n) => re.test(n)));
  };
  const reader = previous?.reader.procRoot === ctx.procRoot ? previous.reader : new ProcReader(ctx.procRoot);
  const all = reader.processes();
  const processes = all.filter(wanted);
  // Parents are looked up only for processes new at this collect and for transient ones.
  let allByPid: Map<number, ProcessInfo> | undefined;
  const processOf = (pid: number) => {
    allByPid ??= new Map(all.map((p) => [p.pid, p]));
    return allByPid.get(pid);
  };
  const parentKeys = new Map<ProcessInfo, string>();
  const keyOf = (parent: ProcessInfo) => {
    let key = parentKeys.get(parent);
    if (key === undefined) {
      key = serviceOf(parent).key;
      parentKeys.set(parent, key);
    }
    return key;
  };

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
    const service = serviceOf(p);
    // The deployed file: a script (relative to the process's working directory), or the executable.
    const artifact = service.artifact
      ? service.artifact.startsWith("/")
        ? service.artifact
        : join(ctx.procRoot, String(p.pid), "cwd", service.artifact)
      : join(ctx.procRoot, String(p.pid), "exe");
    const exeStat = statOrUndefined(artifact);
    const parent = processOf(p.ppid);
    const ownChild = parent !== undefined && keyOf(parent) === service.key; // a worker its master forked, a unit's `sleep`, a subshell
    const name = named.length > 0 ? namedService(named, p) : undefined;
    current.set(id, {
      pid: p.pid,
      ppid: p.ppid,
      startTime: p.startTime,
      service: service.key,
      serviceName: name ?? service.name,
      command: service.command,
      exe: p.exe,
      exeId: exeStat ? `${exeStat.dev}:${exeStat.ino}:${exeStat.mtimeMs}` : undefined,
      cgroup: p.cgroup,
      cpuTicks: p.utime + p.stime,
      rssBytes: p.rssPages * PAGE_SIZE,
      lineage: ownChild ? undefined : Lineages.of(parent, service.key),
      declared: !ownChild && (name !== undefined || p.unit?.endsWith(".service") === true),
      instance: false,
      baseline: previous === undefined,
    });
  }

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
  const listeners = new Set<number>();
  for (const socket of sockets) {
    const owner = socket.state === "LISTEN" ? owners.get(socket.inode) : undefined;
    if (owner !== undefined) listeners.add(owner);
  }

  const lineages = previous?.lineages ?? new Lineages(ctx.state, readProcFile(join(ctx.procRoot, "sys/kernel/random/boot_id")).trim());
  const uptime = parseUptime(readProcFile(join(ctx.procRoot, "uptime")));
  const byPid = classify(current, {
    listeners,
    lineages,
    // Start times are clock ticks after boot; without /proc/uptime every process counts as long-lived.
    youngAfter: uptime === undefined ? undefined : (uptime - ctx.options.serviceAfterMs / 1000) * CLOCK_TICKS,
  });
  /** The nearest service instance above a process, by its parents; the host when there is none. */
  const serviceAbove = (seen: Seen): Subject => {
    let pid = seen.ppid;
    for (let depth = 0; pid > 0 && depth < MAX_ANCESTORS; depth++) {
      const above = byPid.get(pid);
      if (above?.instance) return serviceSubject(above);
      const parent = processOf(pid);
      if (!parent) break;
      pid = parent.ppid;
    }
    return HOST;
  };

  const ports = new Map<string, Set<string>>();
  for (const socket of sockets) {
    const owner = byPid.get(owners.get(socket.inode) ?? -1);
    if (!owner) continue;
    if (socket.state === "LISTEN") {
      const set = ports.get(owner.service) ?? new Set<string>();
      set.add(`${socket.localAddress}:${socket.localPort}`);
      ports.set(owner.service, set);
    } else if (outgoing(socket)) {
      ctx.emit.connection({
        protocol: "tcp",
        localAddress: socket.localAddress,
        localPort: socket.localPort,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        pid: owner.pid,
        processName: owner.instance ? owner.serviceName : owner.command,
        // A transient process's connection is its service's dependency: a cron job's curl is cron's.
        subject: owner.instance ? serviceSubject(owner) : serviceAbove(owner),
        time: now,
      });
    }
  }

  // Each service once, when first seen: the inventory the coordinator keeps.
  const known = previous?.services ?? new Set<string>();
  const services = new Set(known);
  for (const seen of current.values()) {
    if (!seen.instance || services.has(seen.service)) continue;
    services.add(seen.service);
    ctx.emit.event({
      kind: "service.observed",
      subject: serviceSubject(seen),
      attributes: {
        source: "passive",
        ...(seen.exe ? { exe: seen.exe.replace(/ \(deleted\)$/, "") } : {}),
        ...listeningAttribute(ports.get(seen.service)),
      },
      time: now,
    });
  }
  const bootTime = uptime === undefined ? undefined : now - uptime * 1000;
  if (previous) emitEvents(ctx, previous, current, ports, now, bootTime);
  const transient = previous ? emitTransient(ctx, previous, current, serviceAbove, now) : new Map<string, Subject>();
  const hostCpu = emitMetrics(ctx, previous, current, now, reader.loadavgText);
  const oomKills = emitResources(ctx, previous, current, now);
  try {
    lineages.save();
  } catch (error) {
    ctx.log.warn(`the established services were not saved: ${(error as Error).message}`);
  }
  return { at: now, processes: current, ports, hostCpu, services, lineages, transient, oomKills, reader };
}

/** The name the user gave the first of their services that the process matches. */
function namedService(named: Compiled["services"], p: ProcessInfo): string | undefined {
  const exe = p.exe?.replace(/ \(deleted\)$/, "") ?? "";
  const cmdline = p.cmdline.join(" ");
  return named.find(({ match }) => match.test(p.comm) || match.test(exe) || match.test(cmdline))?.name;
}

/**
 * Marks the service instances, and returns the processes by pid. A process is one, for the
 * rest of its life, once any of these holds: it was declared one (a systemd service's main
 * process, or a process the user named); it listens on a TCP port; it has run at least
 * `serviceAfterMs` (its start time against /proc/uptime); or its lineage is established: its
 * parent process had a child of the same service that was an instance, earlier in the agent's
 * life (see Lineages), so that a service that crash-loops under a supervisor, each process
 * living a second, is still one. A child of its own service (a worker of its master, a unit's
 * `sleep`, a subshell) is one only by listening or by age. Every lineage with an instance now
 * is established for later.
 */
function classify(
  current: Map<string, Seen>,
  signs: { listeners: Set<number>; lineages: Lineages; youngAfter: number | undefined },
): Map<number, Seen> {
  const { listeners, lineages, youngAfter } = signs;
  const byPid = new Map<number, Seen>();
  for (const seen of current.values()) {
    byPid.set(seen.pid, seen);
    if (!seen.instance)
      seen.instance =
        seen.declared ||
        listeners.has(seen.pid) ||
        youngAfter === undefined ||
        seen.startTime <= youngAfter ||
        (seen.lineage !== undefined && lineages.has(seen.lineage));
    if (seen.instance && seen.lineage !== undefined) lineages.touch(seen.lineage);
  }
  return byPid;
}

const serviceSubject = (s: Pick<Seen, "service" | "serviceName">): Subject => ({ kind: "service", id: s.service, name: s.serviceName });
const processSubject = (s: Seen): Subject => ({ kind: "process", id: `pid:${s.pid}:${s.startTime}`, name: s.serviceName });

function emitEvents(
  ctx: PluginContext<Options>,
  previous: Snapshot,
  current: Map<string, Seen>,
  ports: Map<string, Set<string>>,
  now: number,
  /** Unix ms of the boot, which start times count from; undefined without /proc/uptime. */
  bootTime: number | undefined,
): void {
  // Instances only: a transient process's start and exit are counted, not reported. One that
  // becomes an instance later (by age) is reported as started then, unless it was there at the
  // first collect, which is the baseline.
  const started = [...current].filter(([id, s]) => s.instance && !s.baseline && !previous.processes.get(id)?.instance);
  const exited = [...previous.processes].filter(([id, s]) => s.instance && !current.has(id)).map(([, s]) => s);
  const restartedServices = new Set<string>();

  // How many instances of a service run now: 0 after an exit means the service is down, and a
  // restart that none of its processes survived is the whole service restarting, not a worker.
  const running = new Map<string, number>();
  for (const s of current.values()) if (s.instance) running.set(s.service, (running.get(s.service) ?? 0) + 1);
  const survivors = (service: string) =>
    [...previous.processes].filter(([id, s]) => s.instance && s.service === service && current.has(id)).length;

  for (const gone of exited) {
    ctx.emit.event({
      kind: "process.exited",
      subject: processSubject(gone),
      attributes: {
        pid: String(gone.pid),
        service: gone.serviceName,
        serviceKey: gone.service,
        remaining: String(running.get(gone.service) ?? 0),
      },
      evidence: { lastSeen: previous.at, exe: gone.exe },
      time: now,
    });
  }
  for (const [id, fresh] of started) {
    ctx.emit.event({
      kind: "process.started",
      subject: processSubject(fresh),
      attributes: { pid: String(fresh.pid), service: fresh.serviceName, serviceKey: fresh.service },
      // Reported up to serviceAfterMs late where it became a service by age: when it started.
      evidence: {
        exe: fresh.exe,
        ...(bootTime === undefined ? {} : { startedAt: Math.round(bootTime + (fresh.startTime * 1000) / CLOCK_TICKS) }),
      },
      time: now,
    });
    // The same service lost a process and gained one within an interval: a restart.
    const before = previous.processes.has(id) ? undefined : exited.find((gone) => gone.service === fresh.service);
    if (!before || restartedServices.has(fresh.service)) continue;
    restartedServices.add(fresh.service);
    ctx.emit.event({
      kind: "process.restarted",
      subject: serviceSubject(fresh),
      attributes: { oldPid: String(before.pid), newPid: String(fresh.pid), survivors: String(survivors(fresh.service)) },
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

/** Command names in the transient processes' label, at most. */
const TRANSIENT_COMMANDS = 3;

/**
 * service.transient_processes: the transient processes found at this collect that were not
 * there at the last one, counted under the nearest service above each (the host where there is
 * none), with their most frequent command names as the `commands` label. A subject whose count
 * drops to zero gets one 0, so that a burst has an end; otherwise zeros are not sent. Returns
 * the subjects counted.
 */
function emitTransient(
  ctx: PluginContext<Options>,
  previous: Snapshot,
  current: Map<string, Seen>,
  serviceAbove: (seen: Seen) => Subject,
  now: number,
): Map<string, Subject> {
  const counts = new Map<string, { subject: Subject; count: number; commands: Map<string, number> }>();
  for (const [id, seen] of current) {
    if (seen.instance || previous.processes.has(id)) continue;
    const subject = serviceAbove(seen);
    let entry = counts.get(subject.id);
    if (!entry) {
      entry = { subject, count: 0, commands: new Map() };
      counts.set(subject.id, entry);
    }
    entry.count++;
    entry.commands.set(seen.command, (entry.commands.get(seen.command) ?? 0) + 1);
  }
  const name = "service.transient_processes";
  for (const { subject, count, commands } of counts.values()) {
    const top = [...commands]
      .sort(([a, m], [b, n]) => n - m || (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, TRANSIENT_COMMANDS)
      .map(([command]) => command.slice(0, 64).replaceAll(",", "_"));
    ctx.emit.metric({ name, value: count, subject, labels: { commands: top.join(",") }, time: now });
  }
  const subjects = new Map([...counts].map(([id, { subject }]) => [id, subject]));
  for (const [id, subject] of previous.transient) if (!subjects.has(id)) ctx.emit.metric({ name, value: 0, subject, time: now });
  return subjects;
}

function emitMetrics(
  ctx: PluginContext<Options>,
  previous: Snapshot | undefined,
  current: Map<string, Seen>,
  now: number,
  /** /proc/loadavg, as the process listing of this collect read it. */
  loadText: string,
): Snapshot["hostCpu"] {
  const host = HOST;
  const read = (file: string) => readProcFile(join(ctx.procRoot, file));
  const [statText, meminfoText] = [read("stat"), read("meminfo")];
  const cpu = parseProcStat(statText);
  if (cpu && previous?.hostCpu && cpu.total > previous.hostCpu.total) {
    const busy = (cpu.busy - previous.hostCpu.busy) / (cpu.total - previous.hostCpu.total);
    ctx.emit.metric({ name: "host.cpu.utilization", value: round(busy), subject: host, time: now });
  }
  // What a service's `service.cpu.cores` is measured against: saturation is all of them busy.
  if (cpu?.cpus) ctx.emit.metric({ name: "host.cpu.cores", value: cpu.cpus, subject: host, time: now });
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
    if (!seen.instance) continue;
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

/**
 * Disk space per data filesystem, and per service what its own cgroup says of its memory:
 * the limit, and an event for each collect in which the kernel OOM-killed some of its
 * processes (with the limit and the peak). A cgroup shared by several services (a login
 * session's) is no one service's, so it is left out. Returns the kills as read.
 */
function emitResources(ctx: PluginContext<Options>, previous: Snapshot | undefined, current: Map<string, Seen>, now: number) {
  if (ctx.options.disks) {
    for (const disk of readDisks(ctx.procRoot, ctx.options.mounts)) {
      const labels = { mount: disk.mount };
      ctx.emit.metric({ name: "host.disk.used_bytes", value: disk.usedBytes, subject: HOST, labels, time: now });
      ctx.emit.metric({ name: "host.disk.available_bytes", value: disk.availableBytes, subject: HOST, labels, time: now });
      ctx.emit.metric({ name: "host.disk.total_bytes", value: disk.totalBytes, subject: HOST, labels, time: now });
    }
  }
  // Every cgroup with a process in it is read, so a service that becomes an instance later is measured against what its cgroup already counted.
  const servicesOf = new Map<string, Set<string>>();
  const instanceOf = new Map<string, Seen>();
  for (const seen of current.values()) {
    if (!seen.cgroup) continue;
    const set = servicesOf.get(seen.cgroup) ?? new Set<string>();
    set.add(seen.service);
    servicesOf.set(seen.cgroup, set);
    if (seen.instance && !instanceOf.has(seen.cgroup)) instanceOf.set(seen.cgroup, seen);
  }
  const kills = new Map<string, number>();
  for (const [cgroup, services] of servicesOf) {
    const memory = readCgroupMemory(ctx.options.cgroupRoot, cgroup);
    if (!memory) continue;
    kills.set(cgroup, memory.oomKills);
    const seen = instanceOf.get(cgroup);
    if (!seen || services.size !== 1) continue;
    const subject = serviceSubject(seen);
    if (memory.limitBytes !== undefined)
      ctx.emit.metric({ name: "service.memory.limit_bytes", value: memory.limitBytes, subject, time: now });
    // The first collect is the baseline; a cgroup that had no process at the last one is new, and counts from zero.
    if (!previous) continue;
    const since = previous.oomKills.get(cgroup) ?? 0;
    if (memory.oomKills > since)
      ctx.emit.event({
        kind: "service.oom_killed",
        subject,
        attributes: {
          kills: String(memory.oomKills - since),
          ...(memory.limitBytes === undefined ? {} : { limitBytes: String(memory.limitBytes) }),
          ...(memory.peakBytes === undefined ? {} : { peakBytes: String(memory.peakBytes) }),
        },
        evidence: { cgroup, oomKillsTotal: memory.oomKills },
        time: now,
      });
  }
  return kills;
}

const round = (n: number) => Math.round(n * 10_000) / 10_000;
