/**
 * The test kit for plugin authors (`@coral-mesh/agent-plugins/testing`):
 *
 *   import { lifecycleSuite, runCollect } from "@coral-mesh/agent-plugins/testing";
 *   lifecycleSuite(myPlugin, { options: { url: "redis://127.0.0.1" } });
 *
 * `runCollect` runs one collect with a recording emitter and returns what was emitted.
 * `lifecycleSuite` registers Vitest tests that run the plugin through the real host:
 * start → stop → stop, stop without start, a collect that throws and one that hangs. Each
 * must leave the plugin stoppable, with no error escaping and nothing left running.
 */
import { describe, expect, it } from "vitest";
import type {
  EmittedConnection,
  EmittedEvent,
  EmittedMetric,
  Emitter,
  Logger,
  Plugin,
  PluginContext,
  PluginStateStore,
} from "./contract.js";
import { type HostTimings, PluginHost, type PluginReport, parsePluginOptions } from "./host.js";

/** An emitter that keeps everything, for assertions. */
export class RecordingEmitter implements Emitter {
  readonly events: EmittedEvent[] = [];
  readonly metrics: EmittedMetric[] = [];
  readonly connections: EmittedConnection[] = [];
  event(event: EmittedEvent): void {
    this.events.push(event);
  }
  metric(metric: EmittedMetric): void {
    this.metrics.push(metric);
  }
  connection(connection: EmittedConnection): void {
    this.connections.push(connection);
  }
}

export class MemoryState implements PluginStateStore {
  readonly values = new Map<string, unknown>();
  get<T>(key: string): T | undefined {
    return this.values.get(key) as T | undefined;
  }
  set(key: string, value: unknown): void {
    this.values.set(key, structuredClone(value));
  }
  delete(key: string): void {
    this.values.delete(key);
  }
}

/** A logger that keeps its lines; `lines` reads "warn: message". */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string) => void lines.push(`${level}: ${message}`);
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

export interface TestContextOptions {
  options?: unknown;
  procRoot?: string;
  now?: () => number;
  state?: MemoryState;
}

/** A context like the host's, with the options validated by the plugin's schema. */
export function createTestContext<P extends Plugin>(
  plugin: P,
  init: TestContextOptions = {},
): PluginContext & { emit: RecordingEmitter; state: MemoryState; log: Logger & { lines: string[] } } {
  return {
    options: parsePluginOptions(plugin, init.options),
    emit: new RecordingEmitter(),
    log: recordingLogger(),
    state: init.state ?? new MemoryState(),
    clock: { now: init.now ?? (() => Date.now()) },
    procRoot: init.procRoot ?? "/proc",
    signal: new AbortController().signal,
  };
}

/** Runs start (if any), one collect, and stop; returns what the plugin emitted. */
export async function runCollect<P extends Plugin>(plugin: P, init: TestContextOptions = {}): Promise<RecordingEmitter> {
  const context = createTestContext(plugin, init);
  try {
    await plugin.start?.(context as never);
    await plugin.collect?.(context as never);
  } finally {
    await plugin.stop?.(context as never);
  }
  return context.emit;
}

export interface LifecycleOptions {
  options?: unknown;
  procRoot?: string;
}

const quick: Partial<HostTimings> = {
  startTimeoutMs: 2_000,
  collectTimeoutMs: 300,
  stopTimeoutMs: 2_000,
  breakerThreshold: 3,
  cooldownMs: 60_000,
};

function hosted(plugin: Plugin, init: LifecycleOptions) {
  const reports: PluginReport[] = [];
  const log = recordingLogger();
  const host = new PluginHost({
    plugin,
    options: init.options,
    emit: new RecordingEmitter(),
    log,
    state: new MemoryState(),
    ...(init.procRoot ? { procRoot: init.procRoot } : {}),
    intervalMs: 50,
    timings: quick,
    onReport: (report) => reports.push(report),
  });
  return { host, reports, log };
}

const until = async (condition: () => boolean, ms = 3_000) => {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** Collects from the plugin, then fails the way a broken dependency would. */
function faulty(plugin: Plugin, fault: "throws" | "hangs"): Plugin {
  return {
    ...plugin,
    collect: async (context) => {
      await plugin.collect?.(context);
      if (fault === "throws") throw new Error("injected failure");
      await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
      await new Promise(() => {}); // ignores the abort, as a badly behaved dependency would
    },
  };
}

/** Registers the lifecycle tests every plugin must pass. */
export function lifecycleSuite(plugin: Plugin, init: LifecycleOptions = {}): void {
  describe(`plugin ${plugin.name}: lifecycle under the Coral host`, () => {
    it("start → stop → stop: stops cleanly, and a second stop is a no-op", async () => {
      const { host } = hosted(plugin, init);
      await host.start();
      await until(() => host.report.status !== "starting");
      expect(host.report).toMatchObject({ status: "running", lastError: null });
      await host.stop();
      await host.stop();
      expect(host.report.status).toBe("stopped");
    });

    it("stop without start does nothing and throws nothing", async () => {
      const { host } = hosted(plugin, init);
      await host.stop();
      expect(host.report.status).toBe("stopped");
    });

    it("a collect that throws degrades the plugin, with the error, and it still stops", async () => {
      const { host } = hosted(faulty(plugin, "throws"), init);
      await host.start();
      await until(() => host.report.status === "degraded");
      expect(host.report.lastError).toContain("injected failure");
      await host.stop();
      expect(host.report.status).toBe("stopped");
    });

    it("a collect that hangs is abandoned at its timeout, and the plugin still stops", async () => {
      const { host } = hosted(faulty(plugin, "hangs"), init);
      await host.start();
      await until(() => host.report.status === "degraded");
      expect(host.report.lastError).toMatch(/collect did not finish within/);
      const stopped = Date.now();
      await host.stop();
      expect(host.report.status).toBe("stopped");
      expect(Date.now() - stopped).toBeLessThan(quick.stopTimeoutMs ?? 2_000 + 500);
    });
  });
}
