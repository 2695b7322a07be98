/**
 * What a service is, for the `passive` collector: the identity that groups processes (serviceOf),
 * and the lineages established as services earlier in the agent's life, kept in the plugin's
 * state store (Lineages). The rule that uses them is in index.ts and docs/collectors.md.
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import * as z from "zod";
import type { PluginStateStore } from "../contract.js";
import type { ProcessInfo } from "./proc.js";

const INTERPRETERS = /^(node|nodejs|bun|deno|python\d*(\.\d+)?|ruby|perl|php|java|dotnet|bash|sh|dash)$/;
const SCRIPT = /\/|\.(m?js|cjs|ts|mts|py|rb|pl|php|jar|sh)$/;

export interface ServiceIdentity {
  /** The subject id: `unit:…`, `script:…` or `exe:…`. */
  key: string;
  name: string;
  /** The file whose replacement is a deploy: an interpreter's script; the executable when undefined. */
  artifact: string | undefined;
  /** The program's own name, ignoring any unit: the script's for an interpreter, else the executable's. */
  command: string;
}

/**
 * A service's identity: its systemd unit; for an interpreter (node, python, java...), the
 * interpreter's name and its script; otherwise its executable. `artifact` is the file whose
 * replacement is a deploy: the script of an interpreter, else the executable.
 */
export function serviceOf(p: ProcessInfo): ServiceIdentity {
  const exe = (p.exe ?? p.cmdline[0] ?? p.comm).replace(/ \(deleted\)$/, "");
  const program = basename(exe);
  const script = INTERPRETERS.test(program) ? scriptOf(p.cmdline.slice(1)) : undefined;
  const command = script ? basename(script).replace(/\.(m?js|cjs|ts|py|rb|pl|php|jar)$/, "") : program;
  if (p.unit?.endsWith(".service")) return { key: `unit:${p.unit}`, name: p.unit.replace(/\.service$/, ""), artifact: script, command };
  if (script) return { key: bounded(`script:${program} ${script}`), name: command, artifact: script, command };
  return { key: bounded(`exe:${exe}`), name: program, artifact: undefined, command };
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

/** Lineages kept, at most: about 16 KiB of the plugin's 64 KiB of state. */
export const MAX_LINEAGES = 1024;
const STATE_KEY = "established";
const stored = z.object({
  version: z.literal(1),
  bootId: z.string().max(64),
  lineages: z.array(z.string().max(32)).max(MAX_LINEAGES),
});

/** A parent process, by its identity: pid and start time. */
export interface Parent {
  pid: number;
  startTime: number;
}

/**
 * The lineages established as services earlier in the agent's life: a lineage is a parent
 * process and the service of a child of it, so that a process its parent starts again in place
 * of a service instance (a supervisor restarting a crashed worker) is an instance at once. The
 * parent is the process, not its service: the `grep` of one shell pipeline that waited minutes
 * makes `grep` a service of that shell only, not of every shell on the host.
 *
 * Kept most recently seen last, and persisted in the plugin's state store when one is added, so
 * that they survive a restart of the agent; forgotten when the host booted again (the parents
 * are gone). At most MAX_LINEAGES: the least recently seen goes first.
 */
export class Lineages {
  private readonly seen = new Map<string, true>();
  private added = false;

  constructor(
    private readonly state: PluginStateStore,
    /** /proc/sys/kernel/random/boot_id: pids and start times mean something within one boot only. */
    private readonly bootId: string,
  ) {
    const parsed = stored.safeParse(state.get(STATE_KEY));
    if (parsed.success && parsed.data.bootId === bootId) for (const lineage of parsed.data.lineages) this.seen.set(lineage, true);
  }

  /** The lineage of a process of service `key` under `parent`, hashed (72 bits) so that a thousand fit the state store. */
  static of(parent: Parent | undefined, key: string): string {
    const from = parent ? `${parent.pid}:${parent.startTime}` : "";
    return createHash("sha256").update(from).update("\0").update(key).digest("base64url").slice(0, 12);
  }

  has(lineage: string): boolean {
    return this.seen.has(lineage);
  }

  /** A lineage with a service instance at this collect: established, and the most recent. */
  touch(lineage: string): void {
    if (this.seen.delete(lineage)) {
      this.seen.set(lineage, true);
      return;
    }
    this.seen.set(lineage, true);
    this.added = true;
    if (this.seen.size > MAX_LINEAGES) this.seen.delete(this.seen.keys().next().value as string);
  }

  /** Writes the set where one was added since the last save (a reorder alone is not worth a write). */
  save(): void {
    if (!this.added) return;
    this.added = false;
    this.state.set(STATE_KEY, { version: 1, bootId: this.bootId, lineages: [...this.seen.keys()] });
  }
}
