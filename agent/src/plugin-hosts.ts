/**
 * The agent's plugins, each in a host of its own (see PluginHost): wired to the batch under
 * way through an emitter that marks what it emits as that plugin's, to a logger and a small
 * persisted state of its own, and to one collect grid for all. Their states are what
 * register and heartbeats tell the coordinator.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CollectGrid, type Emitter, PluginHost, type PluginReport, type PluginStateStore } from "@coral-mesh/agent-plugins";
import type { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import type { LoadedPlugin } from "./plugins.js";

const PLUGIN_STATUS = { starting: 1, running: 2, degraded: 3, failed: 4, stopped: 5 } as const;

export interface PluginHostsOptions {
  plugins: LoadedPlugin[];
  /** Each plugin's state goes in `plugins/NAME.json` under it. */
  dataDir: string;
  procRoot?: string;
  log: (line: string) => void;
  /** The emitter for the plugin of this name. */
  emitterFor: (name: string) => Emitter;
  /** A collect ended: what it emitted can become a batch. */
  onCollected: () => void;
  /** A plugin's state changed (already logged). */
  onStateChange: () => void;
}

export class PluginHosts {
  private readonly hosts: PluginHost[] = [];

  constructor(private readonly options: PluginHostsOptions) {}

  /** Creates every host at once (so their states exist from now on), then starts them all. */
  async start(): Promise<void> {
    const { options } = this;
    const stateDir = join(options.dataDir, "plugins");
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    // One grid for all: plugins with the same interval collect in the same moment, and the agent wakes once for them.
    const grid = new CollectGrid();
    for (const loaded of options.plugins) {
      this.hosts.push(
        new PluginHost({
          plugin: loaded.plugin,
          options: loaded.options,
          emit: options.emitterFor(loaded.plugin.name),
          log: pluginLogger(loaded.plugin.name, options.log),
          state: new FileState(join(stateDir, `${loaded.plugin.name}.json`)),
          grid,
          ...(options.procRoot ? { procRoot: options.procRoot } : {}),
          onCollected: options.onCollected,
          onReport: (report) => {
            options.log(`plugin ${report.name}: ${report.status}${report.lastError ? ` (${report.lastError})` : ""}`);
            options.onStateChange();
          },
        }),
      );
    }
    await Promise.all(this.hosts.map((host) => host.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.hosts.map((host) => host.stop()));
  }

  get reports(): PluginReport[] {
    return this.hosts.map((h) => h.report);
  }

  /** The plugins' states as the coordinator hears them. */
  states(): meshV1.PluginState[] {
    return this.hosts.map((host) => {
      const report = host.report;
      return {
        name: report.name,
        version: report.version,
        status: PLUGIN_STATUS[report.status],
        lastError: report.lastError ?? "",
        sinceUnixMs: report.since,
      };
    });
  }
}

function pluginLogger(name: string, log: (line: string) => void) {
  const at = (level: string) => (message: string) => log(`[${name}] ${level}: ${message}`);
  return { debug: () => {}, info: at("info"), warn: at("warn"), error: at("error") };
}

/** A plugin's persisted state: one small JSON file, written whole. */
class FileState implements PluginStateStore {
  private values: Record<string, unknown>;
  constructor(private readonly path: string) {
    try {
      this.values = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    } catch {
      this.values = {};
    }
  }
  get<T>(key: string): T | undefined {
    return this.values[key] as T | undefined;
  }
  set(key: string, value: unknown): void {
    const next = { ...this.values, [key]: value };
    const text = JSON.stringify(next);
    if (text.length > 65_536) throw new Error("plugin state is limited to 64 KiB");
    this.values = next;
    writeFileSync(this.path, text, { mode: 0o600 });
  }
  delete(key: string): void {
    const { [key]: _, ...rest } = this.values;
    this.values = rest;
    writeFileSync(this.path, JSON.stringify(rest), { mode: 0o600 });
  }
}
