/** What a coordinator runs with: flags over `coordinator.json` in its data directory over defaults. */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  type AnalysisConfig,
  type CoordinatorConfig,
  CoralError,
  coordinatorConfigSchema,
  type NotificationsConfig,
  parseConfigFile,
  parseDuration,
} from "@coral-mesh/sdk-proto";
import { DEFAULT_INTERFACE } from "@coral-mesh/wireguard/path";
import { DEFAULT_MODEL } from "./ask/pricing.js";
import { parseModel } from "./ask/providers/provider.js";
import type { AskSettings } from "./ask/service.js";
import { DEFAULT_RETENTION, type Retention } from "./store/retention.js";

export const DEFAULTS = {
  interfaceName: DEFAULT_INTERFACE.coordinator,
  listenPort: 51820,
  grpcPort: 51821,
  apiHost: "127.0.0.1",
  apiPort: 51822,
  heartbeatIntervalMs: 10_000,
} as const;

export const CONFIG_FILE = "coordinator.json";

export interface CoordinatorOptions {
  dataDir: string;
  /** Flags; each overrides the same field of `coordinator.json` in the data directory. */
  discoveryUrl?: string;
  interfaceName?: string;
  listenPort?: number;
  /** Where agents reach the hub (host:port), best first; detected when absent. */
  endpoints?: string[];
  grpcPort?: number;
  apiHost?: string;
  /** 0 picks a free port. */
  apiPort?: number;
  apiToken?: string;
  heartbeatIntervalMs?: number;
  /** How long raw samples are kept; the other retentions come from `coordinator.json`. */
  metricsRetentionMs?: number;
  /** `off`: no WireGuard; agents on this machine reach the agent service over loopback. */
  wireguardMode?: "auto" | "kernel" | "userspace" | "off";
  /** `false`: no findings engine (it runs by default). */
  analysis?: boolean;
  /** Progress and what happens; one line each. */
  log?: (line: string) => void;
}

export interface Settings {
  discoveryUrl: string;
  interfaceName: string;
  listenPort: number;
  endpoints: string[];
  grpcPort: number;
  apiHost: string;
  apiPort: number;
  apiToken: string | undefined;
  heartbeatIntervalMs: number;
  retention: Retention;
  /** The findings engine's thresholds, per detector and per service (docs/findings.md). */
  analysis: AnalysisConfig;
  /** Webhooks told of findings opening and resolving (`notifications` in coordinator.json). */
  notifications: NotificationsConfig;
  /** `coral ask`: the model, a local model's base URL, the key file (docs/ask.md). The key itself is read at each question. */
  ask: AskSettings;
  /** The findings engine runs unless turned off (`analysis: false` in tests that want a quiet store). */
  analysisEnabled: boolean;
}

function readConfig(file: string): CoordinatorConfig {
  if (!existsSync(file)) return {};
  const parsed = parseConfigFile(readFileSync(file, "utf8"), coordinatorConfigSchema, file);
  if (!parsed.ok) {
    throw new CoralError("config_invalid", parsed.errors.map((e) => `${file}${e.path ? ` ${e.path}` : ""}: ${e.message}`).join("; "));
  }
  return parsed.value;
}

/**
 * Remembers a discovery URL given as a flag in `coordinator.json`. Apart from resolveSettings,
 * which writes nothing: a start that is refused leaves the data directory as it was.
 */
export function rememberDiscovery(options: CoordinatorOptions): void {
  const file = join(options.dataDir, CONFIG_FILE);
  const config = readConfig(file);
  if (options.discoveryUrl && config.discovery !== options.discoveryUrl) {
    writeFileSync(file, `${JSON.stringify({ ...config, discovery: options.discoveryUrl }, null, 2)}\n`, { mode: 0o600 });
  }
}

/** Flags over `coordinator.json` over defaults (see rememberDiscovery for the URL). */
export function resolveSettings(options: CoordinatorOptions): Settings {
  const file = join(options.dataDir, CONFIG_FILE);
  const config = readConfig(file);
  const discoveryUrl = options.discoveryUrl ?? config.discovery;
  if (!discoveryUrl) {
    throw new CoralError(
      "config_invalid",
      "No discovery URL: pass --discovery URL (your Worker, e.g. https://coral-discovery.NAME.workers.dev) on the first start; it is remembered.",
    );
  }
  if (!/^https?:\/\/[^/]+/.test(discoveryUrl)) {
    throw new CoralError("config_invalid", `--discovery ${discoveryUrl} is not an http(s) URL.`);
  }
  const notifications = config.notifications ?? { webhooks: [] };
  notifications.webhooks.forEach((webhook, i) => {
    // The schema takes any URL; a webhook is POSTed to, so only http(s) make sense.
    if (!/^https?:$/.test(new URL(webhook.url).protocol)) {
      throw new CoralError("config_invalid", `${file} notifications.webhooks.${i}.url: a webhook URL is http or https.`);
    }
  });
  const duration = (value: string | undefined, field: string): number | undefined => {
    if (value === undefined) return undefined;
    const ms = parseDuration(value);
    if (ms === undefined) throw new CoralError("config_invalid", `${file} ${field}: "${value}" is not a duration like 10s or 7d.`);
    return ms;
  };
  // A provider Coral does not know is refused at start, not at the first question.
  if (config.ask?.model) parseModel(config.ask.model);
  return {
    discoveryUrl: discoveryUrl.replace(/\/+$/, ""),
    interfaceName: options.interfaceName ?? config.interface ?? DEFAULTS.interfaceName,
    listenPort: options.listenPort ?? config.listenPort ?? DEFAULTS.listenPort,
    endpoints: options.endpoints?.length ? options.endpoints : (config.endpoints ?? []),
    grpcPort: options.grpcPort ?? config.grpcPort ?? DEFAULTS.grpcPort,
    apiHost: options.apiHost ?? config.api?.host ?? DEFAULTS.apiHost,
    apiPort: options.apiPort ?? config.api?.port ?? DEFAULTS.apiPort,
    apiToken: options.apiToken ?? config.api?.token,
    heartbeatIntervalMs:
      options.heartbeatIntervalMs ?? duration(config.heartbeatInterval, "heartbeatInterval") ?? DEFAULTS.heartbeatIntervalMs,
    retention: {
      rawMs:
        options.metricsRetentionMs ??
        duration(config.retention?.raw, "retention.raw") ??
        duration(config.metricsRetention, "metricsRetention") ??
        DEFAULT_RETENTION.rawMs,
      minuteMs: duration(config.retention?.minute, "retention.minute") ?? DEFAULT_RETENTION.minuteMs,
      hourMs: duration(config.retention?.hour, "retention.hour") ?? DEFAULT_RETENTION.hourMs,
      eventsMs: duration(config.retention?.events, "retention.events") ?? DEFAULT_RETENTION.eventsMs,
      inventoryMs: duration(config.retention?.inventory, "retention.inventory") ?? DEFAULT_RETENTION.inventoryMs,
    },
    analysis: config.analysis ?? {},
    notifications,
    analysisEnabled: options.analysis !== false,
    ask: {
      model: config.ask?.model ?? DEFAULT_MODEL,
      ...(config.ask?.baseUrl ? { baseUrl: config.ask.baseUrl.replace(/\/+$/, "") } : {}),
      // Relative to the data directory, where the coordinator's other secrets live.
      ...(config.ask?.apiKeyFile ? { apiKeyFile: resolve(options.dataDir, config.ask.apiKeyFile) } : {}),
    },
  };
}
