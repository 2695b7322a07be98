/**
 * The `ebpf` collector (opt-in, root): what polling /proc misses, from kernel tracepoints
 * through `bpftrace`: processes that live less than an interval (exec and exit, with the
 * exit code) and connections that open and close between two collects.
 *
 * Where bpftrace is missing, tracefs is not mounted, or privileges are lacking, start fails
 * with the reason, which becomes the plugin's state; the agent and its other plugins run on.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import * as z from "zod";
import { definePlugin, PLUGIN_API_VERSION, type PluginContext, type PluginStateStore } from "../contract.js";

const options = z.strictObject({
  /** At most this many events per second; beyond it they are counted, not sent. */
  maxEventsPerSecond: z.number().int().min(1).max(100_000).default(200),
  /** Mount tracefs at /sys/kernel/tracing when it is not (as root). */
  mountTracefs: z.boolean().default(true),
});
type Options = z.infer<typeof options>;

/**
 * One line per observation, fields separated by spaces, the free-text field last:
 *   E pid ppid filename          a process exec'd
 *   X pid code comm              a process (thread group leader) exited
 *   C family sport dport saddr daddr   an outgoing TCP connection was established
 *   A family sport dport saddr daddr   an incoming one was accepted
 */
export const SCRIPT = `
tracepoint:sched:sched_process_exec { printf("E %d %d %s\\n", pid, curtask->real_parent->tgid, str(args->filename)); }
tracepoint:syscalls:sys_enter_exit_group { @code[pid] = args->error_code; }
tracepoint:sched:sched_process_exit /pid == tid/ { printf("X %d %d %s\\n", pid, @code[pid], comm); delete(@code[pid]); }
tracepoint:sock:inet_sock_set_state /args->protocol == 6 && args->newstate == 1 && (args->oldstate == 2 || args->oldstate == 3)/ {
  if (args->family == 2) {
    printf("%s 4 %d %d %s %s\\n", args->oldstate == 2 ? "C" : "A", args->sport, args->dport, ntop(args->saddr), ntop(args->daddr));
  } else {
    printf("%s 6 %d %d %s %s\\n", args->oldstate == 2 ? "C" : "A", args->sport, args->dport, ntop(args->saddr_v6), ntop(args->daddr_v6));
  }
}
END { clear(@code); }
`;

interface Running {
  child: ChildProcess;
  dropped: number;
  windowStart: number;
  inWindow: number;
  exited: string | undefined;
}

const running = new WeakMap<PluginStateStore, Running>();

/** Why eBPF cannot run here, or undefined when it can (mounting tracefs if allowed). */
export function ebpfUnavailable(mountTracefs: boolean): string | undefined {
  try {
    execFileSync("bpftrace", ["--version"], { stdio: "ignore" });
  } catch {
    return "bpftrace is not installed (Debian/Ubuntu: apt-get install bpftrace)";
  }
  if (process.getuid?.() !== 0) return "eBPF needs root; run the agent as root to use the ebpf plugin";
  const tracefs = ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"].some((dir) => existsSync(dir));
  if (!tracefs) {
    if (!mountTracefs) return "tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing";
    try {
      execFileSync("mount", ["-t", "tracefs", "nodev", "/sys/kernel/tracing"], { stdio: "ignore" });
    } catch {
      return "tracefs is not mounted and could not be: mount -t tracefs nodev /sys/kernel/tracing";
    }
  }
  return undefined;
}

export default definePlugin({
  name: "ebpf",
  version: "0.1.0",
  apiVersion: PLUGIN_API_VERSION,
  description: "Short-lived processes and brief connections, from kernel tracepoints (bpftrace; root).",
  intervalMs: 10_000,
  options,
  async start(ctx) {
    const reason = ebpfUnavailable(ctx.options.mountTracefs);
    if (reason) throw new Error(reason);
    const child = spawn("bpftrace", ["-e", SCRIPT], { stdio: ["ignore", "pipe", "pipe"] });
    const state: Running = { child, dropped: 0, windowStart: ctx.clock.now(), inWindow: 0, exited: undefined };
    running.set(ctx.state, state);
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2_000);
    });
    child.once("exit", (code, signal) => {
      state.exited = `bpftrace exited (${signal ?? `code ${code}`}): ${stderr.trim().split("\n").at(-1) ?? ""}`;
    });
    // bpftrace says "Attaching N probes..." once the probes are in place.
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
      const onExit = () => reject(new Error(state.exited ?? "bpftrace exited"));
      child.once("exit", onExit);
      lines.on("line", (line) => {
        if (line.startsWith("Attaching ")) {
          child.off("exit", onExit);
          resolve();
          return;
        }
        handleLine(ctx, state, line);
      });
      ctx.signal.addEventListener("abort", () => reject(new Error("bpftrace did not attach its probes in time")), { once: true });
    });
  },
  collect(ctx) {
    const state = running.get(ctx.state);
    if (!state) throw new Error("not started");
    if (state.exited) throw new Error(state.exited);
    if (state.dropped > 0) {
      ctx.emit.metric({ name: "ebpf.events_dropped", value: state.dropped });
      ctx.log.warn(`${state.dropped} eBPF events over the limit of ${ctx.options.maxEventsPerSecond}/s were counted, not sent`);
      state.dropped = 0;
    }
  },
  async stop(ctx) {
    const state = running.get(ctx.state);
    running.delete(ctx.state);
    const child = state?.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGINT"); // bpftrace detaches its probes on SIGINT
    const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(timer);
  },
});

function handleLine(ctx: PluginContext<Options>, state: Running, line: string): void {
  const now = ctx.clock.now();
  if (now - state.windowStart >= 1_000) {
    state.windowStart = now;
    state.inWindow = 0;
  }
  if (++state.inWindow > ctx.options.maxEventsPerSecond) {
    state.dropped++;
    return;
  }
  const [tag, a = "", b = "", c = "", ...rest] = line.split(" ");
  if (tag === "E") {
    const filename = [c, ...rest].join(" ");
    ctx.emit.event({
      kind: "process.exec",
      subject: { kind: "process", id: `pid:${a}`, name: filename.split("/").pop() ?? filename },
      attributes: { pid: a, ppid: b, exe: filename, source: "ebpf" },
      time: now,
    });
  } else if (tag === "X") {
    const comm = [c, ...rest].join(" ");
    // exit_group's argument is the exit status; 0 also stands for "unknown" (a fatal signal skips it).
    ctx.emit.event({
      kind: "process.exit",
      subject: { kind: "process", id: `pid:${a}`, name: comm },
      attributes: { pid: a, exitCode: b, source: "ebpf" },
      time: now,
    });
  } else if (tag === "C" || tag === "A") {
    const [saddr = "", daddr = ""] = rest;
    const [sport, dport] = [Number(b), Number(c)];
    if (tag === "C") {
      ctx.emit.connection({ protocol: "tcp", localAddress: saddr, localPort: sport, remoteAddress: daddr, remotePort: dport, time: now });
    } else {
      ctx.emit.event({
        kind: "tcp.accepted",
        subject: { kind: "host", id: "host" },
        attributes: { local: `${saddr}:${sport}`, remote: `${daddr}:${dport}`, source: "ebpf" },
        time: now,
      });
    }
  }
}
