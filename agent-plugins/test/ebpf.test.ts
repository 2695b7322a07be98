import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { describe, expect, it } from "vitest";
import ebpf from "../src/ebpf/index.js";
import { PluginHost } from "../src/host.js";
import passive from "../src/passive/index.js";
import { createTestContext, MemoryState, RecordingEmitter, recordingLogger } from "../src/testing.js";

function ebpfSkipReason(): string | null {
  let missing: string | null = null;
  if (process.getuid?.() !== 0) missing = "needs root";
  else if (!process.env.PATH?.split(":").some((dir) => existsSync(`${dir}/bpftrace`)))
    missing = "needs bpftrace (apt-get install bpftrace)";
  if (!missing) return null;
  if (process.env.CORAL_REQUIRE_ALL === "1") throw new Error(`ebpf collector tests: ${missing}, and CORAL_REQUIRE_ALL=1 forbids skipping`);
  console.warn(`skipping the ebpf collector tests: ${missing}`);
  return missing;
}

const until = async (what: string, condition: () => boolean, ms = 15_000) => {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

function host(emit: RecordingEmitter) {
  return new PluginHost({
    plugin: ebpf,
    options: {},
    emit,
    log: recordingLogger(),
    state: new MemoryState(),
    timings: { startTimeoutMs: 30_000 },
  });
}

describe.skipIf(ebpfSkipReason())("the ebpf collector, as root with bpftrace", () => {
  it("sees a short-lived process and a brief connection that passive polling misses", async () => {
    const emit = new RecordingEmitter();
    const tracer = host(emit);
    await tracer.start();
    await until("bpftrace running", () => tracer.report.status === "running", 30_000);
    const passiveState = new MemoryState();
    const poll = async () => {
      const ctx = createTestContext(passive, { state: passiveState });
      await passive.collect?.(ctx as never);
      return ctx.emit;
    };
    try {
      await poll();
      // A process that lives for a moment, and exits 7.
      const child = spawn("sh", ["-c", "exit 7"]);
      const pid = String(child.pid);
      await new Promise((r) => child.once("exit", r));
      // A connection that opens and closes between two polls.
      const server = createServer((socket) => socket.end());
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const port = (server.address() as { port: number }).port;
      await new Promise<void>((r) => {
        const client = createConnection({ host: "127.0.0.1", port }, () => client.end());
        client.once("close", () => r());
      });
      server.close();
      const polled = await poll();

      await until(
        "the exec, the exit and the connection",
        () =>
          emit.events.some((e) => e.kind === "process.exit" && e.attributes?.pid === pid) &&
          emit.connections.some((c) => c.remotePort === port),
      );
      expect(emit.events.find((e) => e.kind === "process.exec" && e.attributes?.pid === pid)?.attributes?.exe).toMatch(/\/sh$/);
      expect(emit.events.find((e) => e.kind === "process.exit" && e.attributes?.pid === pid)?.attributes).toMatchObject({ exitCode: "7" });
      expect(emit.connections.find((c) => c.remotePort === port)).toMatchObject({ localAddress: "127.0.0.1", remoteAddress: "127.0.0.1" });
      // Polling /proc saw neither.
      expect(polled.events.some((e) => e.attributes?.pid === pid)).toBe(false);
      expect(polled.connections.some((c) => c.remotePort === port)).toBe(false);
    } finally {
      await tracer.stop();
    }
    expect(tracer.report.status).toBe("stopped");
  }, 60_000);
});

describe("the ebpf collector, where it cannot run", () => {
  it("fails to start with the reason as its state", async () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    const tracer = host(new RecordingEmitter());
    try {
      await tracer.start();
      expect(tracer.report.status).toBe("degraded");
      expect(tracer.report.lastError).toMatch(/bpftrace is not installed \(Debian\/Ubuntu: apt-get install bpftrace\)/);
    } finally {
      process.env.PATH = path;
      await tracer.stop();
    }
  });
});
