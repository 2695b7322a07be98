/**
 * Who holds what a new interface needs: an interface name, a UDP port. A second
 * coordinator on a host must hear which process holds them and never be told to delete
 * an interface that a live process serves. Answers come from /proc, of the network
 * namespace this process runs in, and are asked only when something is already taken.
 */
import { createSocket } from "node:dgram";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { CoralError } from "@coral-mesh/sdk-proto";

/** A process as `ps` would show it: its pid and command line (cut short). */
export interface ProcessInfo {
  pid: number;
  command: string;
}

function commandOf(pid: number): string | undefined {
  try {
    const words = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const line = words.join(" ");
    if (line.length === 0) return undefined;
    return line.length > 160 ? `${line.slice(0, 159)}…` : line;
  } catch {
    return undefined;
  }
}

function parentOf(pid: number): number | undefined {
  try {
    // The command name, in parentheses, may hold spaces: the fields after its last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return Number.isInteger(ppid) && ppid > 1 ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function pids(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/** The wireguard-go that serves interface `name` (`wireguard-go -f NAME`), if one runs. */
export function wireguardGoFor(name: string): ProcessInfo | undefined {
  for (const pid of pids()) {
    if (pid === process.pid) continue;
    let words: string[];
    try {
      words = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    } catch {
      continue;
    }
    if (words.some((w) => w.endsWith("wireguard-go")) && words.at(-1) === name) return { pid, command: words.join(" ") };
  }
  return undefined;
}

/** The processes with a UDP socket bound to `port` in this network namespace. */
export function udpPortHolders(port: number): ProcessInfo[] {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (!local || Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16) !== port) continue;
      if (fields[9] && fields[9] !== "0") inodes.add(fields[9]);
    }
  }
  if (inodes.size === 0) return [];
  const holders: ProcessInfo[] = [];
  for (const pid of pids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    const holds = fds.some((fd) => {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        return target.startsWith("socket:[") && inodes.has(target.slice(8, -1));
      } catch {
        return false;
      }
    });
    if (holds) holders.push({ pid, command: commandOf(pid) ?? "?" });
  }
  return holders;
}

/** "wireguard-go -f coral0 (pid 12), started by node coral coordinator start ... (pid 10)". */
export function describeOwner(owner: ProcessInfo): string {
  const parent = parentOf(owner.pid);
  const parentCommand = parent === undefined ? undefined : commandOf(parent);
  return `\`${owner.command}\` (pid ${owner.pid})${parentCommand ? `, started by \`${parentCommand}\` (pid ${parent})` : ""}`;
}

/** Whether a UDP port is free to bind on every IPv4 address of this namespace. */
export function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", (error: NodeJS.ErrnoException) => {
      socket.close();
      if (error.code === "EADDRINUSE") resolve(false);
      else reject(error);
    });
    socket.bind(port, () => socket.close(() => resolve(true)));
  });
}

/** The refusal of a UDP port that something holds already, naming what does. */
export function portInUse(port: number): CoralError {
  const holders = udpPortHolders(port);
  const who =
    holders.length > 0
      ? `it is held by ${holders.map(describeOwner).join("; ")}`
      : `the kernel's WireGuard or another process holds it (\`ss -ulpn 'sport = :${port}'\` shows which)`;
  return new CoralError(
    "port_in_use",
    `UDP port ${port} is already in use on this host: ${who}. If it is another coordinator, stop it first, or start this one with another --listen-port (and --interface).`,
  );
}
