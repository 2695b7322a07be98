/**
 * What a host and its services have left: disk space per filesystem, and each service's
 * memory limit and OOM kills from its cgroup (v2). Read without privileges: `statfs` on a
 * mount point, and the cgroup's `memory.max`, `memory.peak` and `memory.events` files.
 */
import { statfsSync } from "node:fs";
import { join } from "node:path";
import { readProcFile } from "./proc.js";

/** Filesystems that hold data on a device or the network; pseudo filesystems (proc, cgroup, overlay layers) are left out. */
const DATA_FILESYSTEMS = new Set([
  "ext2",
  "ext3",
  "ext4",
  "xfs",
  "btrfs",
  "zfs",
  "f2fs",
  "jfs",
  "reiserfs",
  "vfat",
  "exfat",
  "ntfs",
  "ntfs3",
  "fuseblk",
  "nfs",
  "nfs4",
  "cifs",
  "smb3",
]);

export interface Disk {
  mount: string;
  device: string;
  fsType: string;
  totalBytes: number;
  /** What non-root users can still write. */
  availableBytes: number;
  usedBytes: number;
}

/** `\040` and the like, as /proc/mounts escapes spaces, tabs and newlines in paths. */
const unescapeMount = (field: string) =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));

/**
 * The data filesystems of /proc/self/mounts, once per device (a bind mount repeats one),
 * plus any mount point named in `extra` whatever its type. A mount that cannot be statted
 * (an NFS server gone, a path not ours) is left out rather than failing the collect.
 */
export function readDisks(procRoot: string, extra: readonly string[] = []): Disk[] {
  const seen = new Set<string>();
  const disks: Disk[] = [];
  for (const line of readProcFile(join(procRoot, "self/mounts")).split("\n")) {
    const [deviceField, mountField, fsType] = line.split(" ");
    if (!deviceField || !mountField || !fsType) continue;
    const mount = unescapeMount(mountField);
    if (!DATA_FILESYSTEMS.has(fsType) && !extra.includes(mount)) continue;
    const device = unescapeMount(deviceField);
    if (seen.has(device)) continue;
    const disk = statDisk(mount, device, fsType);
    if (!disk) continue;
    seen.add(device);
    disks.push(disk);
  }
  return disks;
}

function statDisk(mount: string, device: string, fsType: string): Disk | undefined {
  try {
    const s = statfsSync(mount);
    const totalBytes = s.blocks * s.bsize;
    if (totalBytes === 0) return undefined;
    return { mount, device, fsType, totalBytes, availableBytes: s.bavail * s.bsize, usedBytes: (s.blocks - s.bfree) * s.bsize };
  } catch {
    return undefined;
  }
}

export interface CgroupMemory {
  /** `memory.max` (v2) or `memory.limit_in_bytes` (v1); undefined when unlimited. */
  limitBytes: number | undefined;
  /** `memory.peak` (v2, kernel 5.19+) or `memory.max_usage_in_bytes` (v1), else the current usage. */
  peakBytes: number | undefined;
  /** `oom_kill` of `memory.events` (v2) or `memory.oom_control` (v1): processes the kernel killed at this cgroup's limit, since it was made. */
  oomKills: number;
}

/** A v1 limit this high is "no limit" (the kernel writes 2^63 less a page). */
const UNLIMITED = 2 ** 60;

/** The memory controller's view of a cgroup directory (see memoryCgroup), v2 or v1; undefined where there is none. */
export function readCgroupMemory(cgroupRoot: string, dir: string): CgroupMemory | undefined {
  const read = (file: string) => readProcFile(join(cgroupRoot, dir, file));
  const number = (file: string) => {
    const text = read(file).trim();
    const n = Number(text);
    return text === "" || text === "max" || !Number.isFinite(n) || n >= UNLIMITED ? undefined : n;
  };
  const oomKills = (text: string) => Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
  const events = read("memory.events");
  if (events !== "")
    return { limitBytes: number("memory.max"), peakBytes: number("memory.peak") ?? number("memory.current"), oomKills: oomKills(events) };
  const control = read("memory.oom_control");
  if (control !== "")
    return {
      limitBytes: number("memory.limit_in_bytes"),
      peakBytes: number("memory.max_usage_in_bytes") ?? number("memory.usage_in_bytes"),
      oomKills: oomKills(control),
    };
  return undefined;
}
