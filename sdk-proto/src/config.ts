/**
 * Config files (JSON) of the coordinator and the agent. Loading never throws at the
 * first problem: it returns every error, each with its path, and warnings for what is
 * accepted but probably not meant (changesets' parse → normalize → check).
 */
import * as z from "zod";
import { describeIssue } from "./errors/issues.js";
import { analysisConfigSchema, notificationsConfigSchema } from "./findings.js";

const DURATION_RE = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const duration = z.string().regex(DURATION_RE, 'a duration is a number and a unit: "500ms", "10s", "5m", "24h", "7d"');

/** "500ms", "10s", "5m", "24h", "7d" in milliseconds; undefined for anything else. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_RE.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

export const agentConfigSchema = z.strictObject({
  /** The agent's name in the mesh; defaults to the hostname. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "a name is lowercase letters, digits and dashes")
    .optional(),
  dataDir: z.string().min(1).optional(),
  interface: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,15}$/, "an interface name is at most 15 letters, digits, . _ -")
    .optional(),
  heartbeatInterval: duration.optional(),
  /** Plugin name (built-in, package or path) → its options, validated by the plugin itself. */
  plugins: z.record(z.string().min(1), z.record(z.string(), z.unknown())).optional(),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;

export const coordinatorConfigSchema = z.strictObject({
  discovery: z.url({ protocol: /^https?$/ }).optional(),
  dataDir: z.string().min(1).optional(),
  interface: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,15}$/, "an interface name is at most 15 letters, digits, . _ -")
    .optional(),
  listenPort: z.number().int().min(1).max(65535).optional(),
  endpoints: z.array(z.string()).max(16).optional(),
  /** Port of the agent service (gRPC), on the mesh address only. */
  grpcPort: z.number().int().min(1).max(65535).optional(),
  heartbeatInterval: duration.optional(),
  /** How long raw metric samples are kept (the same as retention.raw). */
  metricsRetention: duration.optional(),
  /** How long the store keeps what: raw samples 24h, minute rollups 7d, hour rollups 90d, events 30d, unseen services and edges 7d. */
  retention: z
    .strictObject({
      raw: duration.optional(),
      minute: duration.optional(),
      hour: duration.optional(),
      events: duration.optional(),
      inventory: duration.optional(),
    })
    .optional(),
  api: z
    .strictObject({
      host: z.string().optional(),
      port: z.number().int().min(0).max(65535).optional(),
      /** Required when `host` is not a loopback address. */
      token: z.string().min(32, "an API token is at least 32 characters").optional(),
    })
    .optional(),
  /** Detector thresholds (see docs/findings.md). */
  analysis: analysisConfigSchema.optional(),
  notifications: notificationsConfigSchema.optional(),
  /** `coral ask` (docs/ask.md): the model, and where a local one is served. */
  ask: z
    .strictObject({
      /** `provider:model`, e.g. `anthropic:claude-haiku-5-5` or `openai:llama3.1`. */
      model: z
        .string()
        .regex(/^[a-z]+:\S+$/, "a model is provider:model, e.g. anthropic:claude-haiku-5-5 or openai:llama3.1")
        .optional(),
      /** An OpenAI-compatible endpoint (Ollama, llama.cpp's server, vLLM), or another Anthropic endpoint. */
      baseUrl: z.url({ protocol: /^https?$/ }).optional(),
      /** A file holding the provider's API key (mode 0600), when it is not in ANTHROPIC_API_KEY or OPENAI_API_KEY. */
      apiKeyFile: z.string().min(1).optional(),
    })
    .optional(),
});
export type CoordinatorConfig = z.infer<typeof coordinatorConfigSchema>;

export interface ConfigProblem {
  /** Dotted path of the field, "" for the file as a whole. */
  path: string;
  message: string;
}

export type ConfigResult<T> =
  | { ok: true; value: T; warnings: ConfigProblem[] }
  | { ok: false; errors: ConfigProblem[]; warnings: ConfigProblem[] };

/** Parses a JSON config file's text against a schema; `file` names it in messages. */
export function parseConfigFile<S extends z.ZodType>(text: string, schema: S, file: string): ConfigResult<z.infer<S>> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return { ok: false, errors: [{ path: "", message: `${file} is not valid JSON: ${detail}` }], warnings: [] };
  }
  const warnings: ConfigProblem[] = [];
  if (json !== null && typeof json === "object" && !Array.isArray(json)) {
    for (const [key, value] of Object.entries(json)) {
      if (value === null) warnings.push({ path: key, message: `${file}: ${key} is null; leave it out to use the default` });
    }
    json = Object.fromEntries(Object.entries(json).filter(([, v]) => v !== null));
  }
  const result = schema.safeParse(json);
  if (result.success) return { ok: true, value: result.data, warnings };
  const errors = result.error.issues.map((issue) => {
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [];
    const path = [...issue.path, ...(keys.length === 1 ? keys : [])].join(".");
    if (issue.code === "unrecognized_keys") {
      const message = `unknown setting${keys.length > 1 ? "s" : ""} ${keys.join(", ")} (check the spelling)`;
      return { path, message: `${file}: ${path ? `${path}: ` : ""}${message}` };
    }
    return { path, message: `${file}: ${describeIssue(issue)}` };
  });
  return { ok: false, errors, warnings };
}
