/**
 * Reading Linux's /proc directly: processes, their sockets, host CPU, memory and load.
 * Cheaper than spawning `ps` or `ss` on every collect, and testable against a fixture
 * tree (every reader takes the /proc root). Parsers are pure; readers tolerate processes
 * that exit while being read.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
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

/** /proc/PID/stat. The command name may hold spaces and parentheses, so fields count from the last ")". */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const fields = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // fields[0] is field 3 (state); field N is fields[N - 3].
  const field = (n: number) => Number(fields[n - 3]);
  const pid = Number(text.slice(0, open).trim());
  if (!Number.isInteger(pid) || fields.length < 22) return undefined;
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: fields[0] ?? "?",
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    startTime: field(22),
    rssPages: field(24),
  };
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

/** /proc/loadavg: the 1, 5 and 15 minute load. */
export function parseLoadavg(text: string): [number, number, number] | undefined {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (a === undefined || b === undefined || c === undefined || [a, b, c].some(Number.isNaN)) return undefined;
  return [a, b, c];
}

export interface ProcessInfo extends ProcStat {
  /** The executable's path, when readable; " (deleted)" is kept: it means a new binary replaced it. */
  exe: string | undefined;
  cmdline: string[];
  unit: string | undefined;
}

const isPid = (name: string) => /^\d+$/.test(name);

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return ""; // gone meanwhile, or not ours to read
  }
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
 * are looked up only for sockets not seen before, with a full rescan every sixth call.
 * Reads are synchronous: these are tiny in-memory files, and one read per promise costs
 * more than the read itself.
 */
export class ProcReader {
  private readonly statics = new Map<string, Pick<ProcessInfo, "exe" | "cmdline" | "unit">>();
  private owners = new Map<number, number>();
  private unowned = new Set<number>();
  private calls = 0;

  constructor(readonly procRoot: string) {}

  processes(): ProcessInfo[] {
    const out: ProcessInfo[] = [];
    let names: string[];
    try {
      names = readdirSync(this.procRoot);
    } catch {
      return [];
    }
    for (const name of names) {
      const process = isPid(name) ? this.process(Number(name)) : undefined;
      if (process) out.push(process);
    }
    const seen = new Set(out.map((p) => `${p.pid}:${p.startTime}`));
    for (const key of this.statics.keys()) if (!seen.has(key)) this.statics.delete(key);
    return out;
  }

  /** One process, or undefined when it is gone (or was never there). */
  process(pid: number): ProcessInfo | undefined {
    const dir = join(this.procRoot, String(pid));
    const stat = parseStat(read(join(dir, "stat")));
    if (!stat) return undefined;
    const key = `${stat.pid}:${stat.startTime}`;
    let fixed = this.statics.get(key);
    if (!fixed) {
      fixed = {
        exe: link(join(dir, "exe")),
        cmdline: read(join(dir, "cmdline"))
          .split("\0")
          .filter((a) => a !== ""),
        unit: unitFromCgroup(read(join(dir, "cgroup"))),
      };
      this.statics.set(key, fixed);
    }
    return { ...stat, ...fixed };
  }

  tcpSockets(): Socket[] {
    return [...parseNetTcp(read(join(this.procRoot, "net", "tcp")), 4), ...parseNetTcp(read(join(this.procRoot, "net", "tcp6")), 6)];
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
    if (unknown || this.calls % 6 === 1) {
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
