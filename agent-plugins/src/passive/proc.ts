/**
 * Reading Linux's /proc directly: processes, their sockets, host CPU, memory and load.
 * Cheaper than spawning `ps` or `ss` on every collect, and testable against a fixture
 * tree (every reader takes the /proc root). Parsers are pure; readers tolerate processes
 * that exit while being read.
 */
import { closeSync, openSync, readdirSync, readlinkSync, readSync } from "node:fs";
import { join } from "node:path";

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** Clock ticks of CPU in user and kernel mode. */
  utime: number;
  stime: number;
  /** Clock ticks after boot when the process started: with the pid, a process's identity. */
  startTime: number;
  /** Resident set, in pages. */
  rssPages: number;
}

/**
 * /proc/PID/stat. The command name may hold spaces and parentheses, so fields count from the
 * last ")". Read on every collect for every process, so it scans the line once for the
 * fields it needs rather than splitting it into fifty strings.
 */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open || text.charCodeAt(close + 1) !== SPACE) return undefined;
  const pid = Number(text.slice(0, open));
  if (!Number.isInteger(pid)) return undefined;
  // Field 3 (the state) is one character; field 4 starts after it and a space.
  let ppid = 0;
  let utime = 0;
  let stime = 0;
  let startTime = 0;
  let field = 4;
  let value = 0;
  for (let i = close + 4; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : SPACE;
    if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48);
      continue;
    }
    if (c !== SPACE && c !== NEWLINE) continue; // a sign, in fields not read here
    if (field === 4) ppid = value;
    else if (field === 14) utime = value;
    else if (field === 15) stime = value;
    else if (field === 22) startTime = value;
    else if (field === 24)
      return { pid, comm: text.slice(open + 1, close), state: text.charAt(close + 2), ppid, utime, stime, startTime, rssPages: value };
    field++;
    value = 0;
  }
  return undefined; // cut short
}

const SPACE = 32;
const NEWLINE = 10;

function cgroupOf(text: string): { unit: string | undefined; cgroup: string | undefined } {
  return { unit: unitFromCgroup(text), cgroup: memoryCgroup(text) };
}

/**
 * The directory of a process's memory cgroup, relative to where cgroups are mounted, from
 * /proc/PID/cgroup: `system.slice/api.service` under cgroup v2 (`0::/system.slice/api.service`),
 * `memory/docker/ID` where the memory controller is on a v1 hierarchy (`4:memory:/docker/ID`,
 * as on hybrid hosts). Undefined for the root cgroup, which is the whole host's.
 */
export function memoryCgroup(text: string): string | undefined {
  let v2: string | undefined;
  for (const line of text.split("\n")) {
    const [, controllers = "", ...rest] = line.split(":");
    const path = rest.join(":").trim();
    if (controllers.split(",").includes("memory")) return path === "/" || path === "" ? undefined : `memory${path}`;
    if (line.startsWith("0::") && path !== "/" && path !== "") v2 = path.slice(1);
  }
  return v2;
}

/** The systemd unit of a process from /proc/PID/cgroup, if it runs in one. */
export function unitFromCgroup(text: string): string | undefined {
  for (const line of text.split("\n")) {
    const path = line.split(":").slice(2).join(":");
    const unit = path
      .split("/")
      .reverse()
      .find((part) => /\.(service|scope)$/.test(part));
    if (unit) return unit;
  }
  return undefined;
}

export type TcpState = "ESTABLISHED" | "LISTEN" | "OTHER";

export interface Socket {
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  state: TcpState;
  inode: number;
}

/** /proc/net/tcp and tcp6: addresses are hex, in host byte order per 32-bit word. */
export function parseNetTcp(text: string, family: 4 | 6): Socket[] {
  const sockets: Socket[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [local, remote, st, inode] = [f[1], f[2], f[3], f[9]];
    if (!local || !remote || !st || !inode) continue;
    const [localHex = "", localPort = ""] = local.split(":");
    const [remoteHex = "", remotePort = ""] = remote.split(":");
    sockets.push({
      family,
      localAddress: hexAddress(localHex),
      localPort: Number.parseInt(localPort, 16),
      remoteAddress: hexAddress(remoteHex),
      remotePort: Number.parseInt(remotePort, 16),
      state: st === "01" ? "ESTABLISHED" : st === "0A" ? "LISTEN" : "OTHER",
      inode: Number(inode),
    });
  }
  return sockets;
}

function hexAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  // Each 32-bit word is little-endian on the machines Coral runs on (x86-64, arm64).
  const bytes = words.flatMap((word) => (word.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.length !== 16) return hex;
  // An IPv4-mapped IPv6 address reads as the IPv4 address.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join(".");
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return compressIpv6(groups);
}

function compressIpv6(groups: string[]): string {
  // The longest run of zero groups becomes "::".
  let best = { start: -1, length: 0 };
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > best.length && j - i > 1) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(":");
  return `${groups.slice(0, best.start).join(":")}::${groups.slice(best.start + best.length).join(":")}`;
}

export interface HostCpu {
  /** Ticks spent busy and in total, summed over CPUs, since boot. */
  busy: number;
  total: number;
  cpus: number;
}

/** /proc/stat: the aggregate `cpu` line and the number of `cpuN` lines. */
export function parseProcStat(text: string): HostCpu | undefined {
  const lines = text.split("\n");
  const aggregate = lines.find((l) => l.startsWith("cpu "));
  if (!aggregate) return undefined;
  const ticks = aggregate.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0); // idle + iowait
  return { busy: total - idle, total, cpus: lines.filter((l) => /^cpu\d+ /.test(l)).length };
}

/** /proc/meminfo, in bytes: total and available. */
export function parseMeminfo(text: string): { totalBytes: number; availableBytes: number } | undefined {
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  const total = kb("MemTotal");
  const available = kb("MemAvailable");
  if (!Number.isFinite(total) || !Number.isFinite(available)) return undefined;
  return { totalBytes: total * 1024, availableBytes: available * 1024 };
}

/** The parent of every kernel thread. */
const KTHREADD = 2;

/** /proc/loadavg's last field: the pid the kernel handed out last. */
export function parseLastPid(text: string): number | undefined {
  const last = Number(text.trim().split(/\s+/)[4]);
  return Number.isInteger(last) && last > 0 ? last : undefined;
}

/** Whether the kernel, handing out pids one after another (and wrapping), went past `pid` going from `from` to `to`. */
function handedOutBetween(pid: number, from: number, to: number): boolean {
  if (to === from) return false;
  return to > from ? pid > from && pid <= to : pid > from || pid <= to;
}

/** /proc/uptime's first field: seconds since boot, the clock of a process's start time (ProcStat.startTime). */
export function parseUptime(text: string): number | undefined {
  const seconds = Number.parseFloat(text);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : undefined;
}

/** /proc/loadavg: the 1, 5 and 15 minute load. */
export function parseLoadavg(text: string): [number, number, number] | undefined {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (a === undefined || b === undefined || c === undefined || [a, b, c].some(Number.isNaN)) return undefined;
  return [a, b, c];
}

/** What stays the same for as long as a process lives (a pid and its start time). */
interface Statics {
  startTime: number;
  exe: string | undefined;
  cmdline: string[];
  unit: string | undefined;
  /** Its memory cgroup's directory under the cgroup mount (see memoryCgroup), where it has its own. */
  cgroup: string | undefined;
}

export interface ProcessInfo extends ProcStat {
  /** The executable's path, when readable; " (deleted)" is kept: it means a new binary replaced it. */
  exe: string | undefined;
  cmdline: string[];
  unit: string | undefined;
  /** Its memory cgroup's directory under the cgroup mount (see memoryCgroup), where it has its own. */
  cgroup: string | undefined;
}

/** A /proc entry that is a process: all digits (checked without a regular expression, for every entry on every collect). */
function isPid(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return name.length > 0;
}

/** Shared by every read: it grows to the largest file read (a busy host's /proc/net/tcp) and stays. */
let buffer = Buffer.allocUnsafe(64 * 1024);

/** A whole /proc file (see readWhole); "" when it cannot be opened or read. */
export function readProcFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return ""; // gone meanwhile, or not ours to read
  }
  try {
    return readWhole(fd) ?? "";
  } finally {
    closeSync(fd);
  }
}

/**
 * The whole file behind an open descriptor, from offset 0, read until a read returns 0. Most
 * /proc files are seq_files, which answer about a page (4 KiB) per read(2) however big the
 * buffer: a short read is not the end (a single read of a busy host's /proc/net/tcp saw 26 of
 * 1,728 rows). Reads go at explicit offsets (pread), so that a descriptor kept open is read
 * again from the start; each read continues from where the seq_file stopped. undefined when a
 * read fails (ESRCH: the process behind a kept descriptor is gone).
 */
function readWhole(fd: number): string | undefined {
  let length = 0;
  try {
    for (;;) {
      if (length === buffer.length) {
        const bigger = Buffer.allocUnsafe(buffer.length * 2);
        buffer.copy(bigger, 0, 0, length);
        buffer = bigger;
      }
      const n = readSync(fd, buffer, length, buffer.length - length, length);
      if (n === 0) return buffer.toString("utf8", 0, length);
      length += n;
    }
  } catch {
    return undefined;
  }
}

/** The TCP tables are read at least every this many calls of tcpSockets(), changed or not. */
const TCP_REREAD_EVERY = 6;

/** Descriptors of /proc/PID/stat kept open between collects, at most this many. */
const MAX_KEPT_FDS = 2048;

/**
 * /proc/net/snmp's TCP counters that move when the TCP table gains or loses a connection:
 * connections opened either way, failed and reset, and established now (one MIB for IPv4 and
 * IPv6). Empty when the file is missing or not as expected. Read at every collect, so it finds
 * the two `Tcp:` lines rather than splitting the whole file.
 */
export function tcpChurn(snmp: string): string {
  const header = lineStarting(snmp, "Tcp: ", 0);
  const values = header === undefined ? undefined : lineStarting(snmp, "Tcp: ", header.end);
  if (!header || !values) return "";
  const names = snmp.slice(header.start, header.end).split(" ");
  const counts = snmp.slice(values.start, values.end).split(" ");
  return ["ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "CurrEstab"]
    .map((name) => counts[names.indexOf(name)] ?? "")
    .join(" ");
}

/** The first line at or after `from` that starts with `prefix`: where it starts and ends (before its newline). */
function lineStarting(text: string, prefix: string, from: number): { start: number; end: number } | undefined {
  let start = from;
  if (!text.startsWith(prefix, from)) {
    const newline = text.indexOf(`\n${prefix}`, from);
    if (newline < 0) return undefined;
    start = newline + 1;
  }
  const newline = text.indexOf("\n", start);
  return { start, end: newline < 0 ? text.length : newline };
}

/** The sockets in use of one protocol in /proc/net/sockstat or sockstat6 ("TCP", "TCP6"...); undefined where it has no line. */
export function sockstatInUse(text: string, protocol: string): number | undefined {
  const line = lineStarting(text, `${protocol}: inuse `, 0);
  if (!line) return undefined;
  const count = Number.parseInt(text.slice(line.start + protocol.length + 8, line.end), 10);
  return Number.isNaN(count) ? undefined : count;
}

function link(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Reads /proc with what does not change cached: a process's command line, executable and
 * unit are read once per process (pid and start time), its stat every time; socket owners
 * are looked up only for sockets not seen before, with a full rescan every thirtieth call.
 * Reads are synchronous: these are tiny in-memory files, and one read per promise costs
 * more than the read itself.
 */
export class ProcReader {
  /** What does not change for a process, by pid, with the start time it belongs to. */
  private readonly statics = new Map<number, Statics>();
  /**
   * Open /proc/PID/stat descriptors: reading one again costs two preads (the second finds the
   * end) instead of open, two reads and close. A descriptor stays bound to its process; once
   * that exits, reads fail (ESRCH) even if the pid is reused, and it is closed.
   */
  private readonly statFds = new Map<number, number>();
  private owners = new Map<number, number>();
  private unowned = new Set<number>();
  private calls = 0;
  /** Kernel threads as last read, by pid (see processes()). */
  private readonly kernelThreads = new Map<number, ProcessInfo>();
  /** The pid the kernel handed out last, as of the previous processes() (from /proc/loadavg). */
  private lastPid: number | undefined;
  private listings = 0;
  private loadavgRead = "";
  /** The pids of the last call's processes: the next call's, if no pid was handed out meanwhile. */
  private listed: number[] = [];
  /** Whether `procRoot` shows the agent's own pid namespace (the one /proc/loadavg speaks of). */
  private sameNamespace: boolean | undefined;
  /** Whether a process started or ended since the TCP table was last read (see tcpSockets()). */
  private processesChanged = true;
  /** The TCP table as last read, what said it may change, and calls since it was read. */
  private tcp: { sockets: Socket[]; signature: string; age: number } | undefined;

  constructor(readonly procRoot: string) {}

  /** /proc/loadavg as the latest processes() read it: the load averages are in it too. */
  get loadavgText(): string {
    return this.loadavgRead;
  }

  /**
   * Every process. A kernel thread (a child of kthreadd, with no command line) is read once and
   * not again while its pid cannot have gone to another process: while the kernel has not
   * handed that pid out since (`/proc/loadavg` names the last pid handed out), and at least
   * every 30th call. Kernel threads are most of the processes on many hosts, and no collector
   * reports them; what is returned for one (its CPU time, memory) is as of its last read.
   *
   * When the kernel has handed out no pid at all since the last call, no process (nor thread)
   * started meanwhile, so /proc is not listed again (half a millisecond here, at every collect
   * of a quiet host): the processes are those of the last listing, less those that ended. This
   * holds only where `/proc/loadavg` speaks of the pid namespace that `procRoot` shows, which is
   * the agent's own: it is checked through `procRoot/self`.
   */
  processes(): ProcessInfo[] {
    const out: ProcessInfo[] = [];
    const since = this.lastPid;
    // Read before the listing: a pid handed out after this read is one the next call sees as news.
    this.loadavgRead = readProcFile(`${this.procRoot}/loadavg`);
    const before = parseLastPid(this.loadavgRead);
    this.lastPid = before;
    const rereadAll = this.listings++ % 30 === 0 || since === undefined || before === undefined;
    this.sameNamespace ??= link(`${this.procRoot}/self`) === String(process.pid);
    let pids: number[];
    let lastPid = before;
    if (!rereadAll && before === since && this.sameNamespace) pids = this.listed;
    else {
      let names: string[];
      try {
        names = readdirSync(this.procRoot);
      } catch {
        return [];
      }
      pids = names.filter(isPid).map(Number);
      lastPid = parseLastPid(readProcFile(`${this.procRoot}/loadavg`)) ?? before; // as of the listing, for the kernel threads
    }
    const listed: number[] = [];
    for (const pid of pids) {
      listed.push(pid);
      const thread = this.kernelThreads.get(pid);
      if (thread && !rereadAll && !handedOutBetween(pid, since as number, lastPid as number)) {
        out.push(thread);
        continue;
      }
      const process = this.process(pid, true);
      if (!process) continue;
      out.push(process);
      if (process.cmdline.length === 0 && (process.ppid === KTHREADD || process.pid === KTHREADD)) this.kernelThreads.set(pid, process);
      else if (thread) this.kernelThreads.delete(pid);
    }
    this.listed = out.map((p) => p.pid);
    // Forget processes that are gone, only when some are: most collects find none.
    if (this.statFds.size > listed.length || this.statics.size > out.length || this.kernelThreads.size > out.length) {
      const alive = new Map(out.map((p) => [p.pid, p.startTime]));
      for (const [pid, fd] of this.statFds) {
        if (alive.has(pid)) continue;
        closeSync(fd);
        this.statFds.delete(pid);
      }
      for (const [pid, fixed] of this.statics)
        if (alive.get(pid) !== fixed.startTime) {
          this.statics.delete(pid);
          this.processesChanged = true;
        }
      for (const pid of this.kernelThreads.keys()) if (!alive.has(pid)) this.kernelThreads.delete(pid);
    }
    return out;
  }

  /** One process, or undefined when it is gone (or was never there). */
  process(pid: number, keep = false): ProcessInfo | undefined {
    const dir = `${this.procRoot}/${pid}`;
    const stat = parseStat(this.readStat(pid, dir, keep));
    if (!stat) return undefined;
    let fixed = this.statics.get(pid);
    if (fixed?.startTime !== stat.startTime) {
      this.processesChanged = true;
      fixed = {
        startTime: stat.startTime,
        exe: link(`${dir}/exe`),
        cmdline: readProcFile(`${dir}/cmdline`)
          .split("\0")
          .filter((a) => a !== ""),
        ...cgroupOf(readProcFile(`${dir}/cgroup`)),
      };
      this.statics.set(pid, fixed);
    }
    return {
      pid,
      comm: stat.comm,
      state: stat.state,
      ppid: stat.ppid,
      utime: stat.utime,
      stime: stat.stime,
      startTime: stat.startTime,
      rssPages: stat.rssPages,
      exe: fixed.exe,
      cmdline: fixed.cmdline,
      unit: fixed.unit,
      cgroup: fixed.cgroup,
    };
  }

  /** Closes the descriptors kept open; the reader still works afterwards, opening files anew. */
  close(): void {
    for (const fd of this.statFds.values()) closeSync(fd);
    this.statFds.clear();
  }

  private readStat(pid: number, dir: string, keep: boolean): string {
    const kept = this.statFds.get(pid);
    if (kept !== undefined) {
      const text = readWhole(kept);
      if (text !== undefined) return text;
      closeSync(kept);
      this.statFds.delete(pid);
      return "";
    }
    if (!keep || this.statFds.size >= MAX_KEPT_FDS) return readProcFile(`${dir}/stat`);
    let fd: number;
    try {
      fd = openSync(`${dir}/stat`, "r");
    } catch {
      return "";
    }
    const text = readWhole(fd);
    if (text === undefined) {
      closeSync(fd);
      return "";
    }
    this.statFds.set(pid, fd);
    return text;
  }

  /**
   * Listening and connected TCP sockets. Reading /proc/net/tcp walks the kernel's whole
   * connection hash table, however few sockets it holds (0.5-1 ms here, most of a collect's
   * time in the kernel), so the tables are read again only when something says they may have
   * changed, each a read of a few microseconds: the sockets in use (/proc/net/sockstat and
   * sockstat6), the TCP counters of /proc/net/snmp (see tcpChurn), or a process that started or
   * ended since; and at least every TCP_REREAD_EVERY calls. A connection that comes or goes
   * always moves a counter. What this can miss for a while: one process closing a listening
   * socket and opening another between two calls, with no connection made or ended meanwhile.
   * A table that sockstat says is empty is not read at all.
   */
  tcpSockets(): Socket[] {
    const net = join(this.procRoot, "net");
    const sockstat = readProcFile(join(net, "sockstat"));
    const sockstat6 = readProcFile(join(net, "sockstat6"));
    const churn = tcpChurn(readProcFile(join(net, "snmp")));
    const inUse = { TCP: sockstatInUse(sockstat, "TCP"), TCP6: sockstatInUse(sockstat6, "TCP6") };
    const signature = `${inUse.TCP} ${inUse.TCP6} ${churn}`;
    const kept = this.tcp;
    const changed = this.processesChanged;
    this.processesChanged = false;
    if (kept && churn !== "" && !changed && kept.signature === signature && ++kept.age < TCP_REREAD_EVERY) return kept.sockets;
    const table = (name: string, key: "TCP" | "TCP6", family: 4 | 6) =>
      inUse[key] === 0 ? [] : parseNetTcp(readProcFile(join(net, name)), family);
    const sockets = [...table("tcp", "TCP", 4), ...table("tcp6", "TCP6", 6)];
    this.tcp = { sockets, signature, age: 0 };
    return sockets;
  }

  /**
   * Socket inode → pid for these sockets, scanning fd tables only when a socket is new.
   * Sockets no process owns (inode 0 in TIME_WAIT, or another user's) are remembered as
   * such, so they do not cause a scan at every call.
   */
  socketOwners(sockets: Socket[], pids: number[]): Map<number, number> {
    this.calls++;
    const alive = new Set(pids);
    const unknown = sockets.some((s) => {
      if (s.inode === 0 || this.unowned.has(s.inode)) return false;
      const owner = this.owners.get(s.inode);
      return owner === undefined || !alive.has(owner);
    });
    if (unknown || this.calls % 30 === 1) {
      this.owners = scanOwners(this.procRoot, pids);
      this.unowned = new Set(sockets.filter((s) => s.inode !== 0 && !this.owners.has(s.inode)).map((s) => s.inode));
    }
    return this.owners;
  }
}

function scanOwners(procRoot: string, pids: number[]): Map<number, number> {
  const owners = new Map<number, number>();
  for (const pid of pids) {
    const fdDir = join(procRoot, String(pid), "fd");
    let fds: string[];
    try {
      fds = readdirSync(fdDir);
    } catch {
      continue;
    }
    for (const fd of fds) {
      const target = link(join(fdDir, fd));
      if (target?.startsWith("socket:[")) owners.set(Number(target.slice(8, -1)), pid);
    }
  }
  return owners;
}
