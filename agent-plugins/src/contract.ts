/**
 * The public contract between the Coral agent and its collector plugins. A plugin
 * declares who it is and what options it takes, and either collects on an interval
 * (`collect`) or runs until stopped (`start`/`stop`), or both. It sees only the context
 * the host gives it: its validated options, a logger, an emitter, a little persisted
 * state, a clock, the `/proc` root to read, and an AbortSignal. Never the agent itself.
 */
import * as z from "zod";

/** The plugin API this package defines. A plugin declares the version it targets. */
export const PLUGIN_API_VERSION = 1;

export type SubjectKind = "agent" | "service" | "process" | "host";

export interface Subject {
  kind: SubjectKind;
  /** Stable within the agent: a service key, or `pid:starttime` for a process. */
  id: string;
  name?: string;
}

/** Something that happened: a process started, a service was deployed, a check failed. */
export interface EmittedEvent {
  /** Dotted kind, e.g. `process.started`, `service.deployed`, `port.opened`. */
  kind: string;
  subject: Subject;
  attributes?: Record<string, string>;
  /** What the conclusion rests on (e.g. the old and new executable); any JSON. */
  evidence?: unknown;
  /** Unix ms; the host's clock when absent. */
  time?: number;
}

export interface EmittedMetric {
  name: string;
  value: number;
  subject?: Subject;
  labels?: Record<string, string>;
  time?: number;
}

/** A TCP connection, reported from the side that opened it. */
export interface EmittedConnection {
  protocol?: "tcp" | "udp";
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  pid?: number;
  processName?: string;
  subject?: Subject;
  time?: number;
}

export interface Emitter {
  event(event: EmittedEvent): void;
  metric(metric: EmittedMetric): void;
  connection(connection: EmittedConnection): void;
}

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A little JSON the plugin keeps across agent restarts (at most 64 KiB in all). */
export interface PluginStateStore {
  get<T = unknown>(key: string): T | undefined;
  set(key: string, value: unknown): void;
  delete(key: string): void;
}

export interface Clock {
  now(): number;
}

export interface PluginContext<Options = unknown> {
  options: Options;
  log: Logger;
  emit: Emitter;
  state: PluginStateStore;
  clock: Clock;
  /** Where to read process and network state: `/proc`, or a fixture tree in tests. */
  procRoot: string;
  /** Aborted when the call's time is up or the plugin is stopping: stop waiting and return. */
  signal: AbortSignal;
}

type MaybePromise<T> = T | Promise<T>;

export interface Plugin<Schema extends z.ZodType = z.ZodType> {
  /** Lowercase, digits and dashes: `passive`, `sdk`, `redis-collector`. */
  name: string;
  /** The plugin's own version, semver. */
  version: string;
  /** The plugin API version it was written against. */
  apiVersion: number;
  /** Validates the plugin's options before anything starts. */
  options: Schema;
  description?: string;
  /** How often `collect` runs; 10 s when absent. The `interval` option, if the user sets one, wins. */
  intervalMs?: number;
  // Hooks are declared as methods, so that a plugin with typed options is still a `Plugin`.
  /** Called once per interval; should finish well within it. */
  collect?(context: PluginContext<z.infer<Schema>>): MaybePromise<void>;
  /** Called once before the first collect; for plugins that watch something continuously. */
  start?(context: PluginContext<z.infer<Schema>>): MaybePromise<void>;
  /** Called once at the end; must release whatever start acquired, and be safe without a start. */
  stop?(context: PluginContext<z.infer<Schema>>): MaybePromise<void>;
}

const identitySchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, "a plugin name is lowercase letters, digits and dashes, starting with a letter"),
  version: z.string().regex(/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/, "a plugin version is semver, e.g. 1.2.3"),
  apiVersion: z.number().int().positive(),
  intervalMs: z.number().int().min(100).max(86_400_000).optional(),
});

export class PluginDefinitionError extends Error {
  override readonly name = "PluginDefinitionError";
}

/** Declares a plugin; refuses a malformed identity or an API version this host does not speak. */
export function definePlugin<Schema extends z.ZodType>(plugin: Plugin<Schema>): Readonly<Plugin<Schema>> {
  checkPlugin(plugin);
  return Object.freeze(plugin);
}

/** What definePlugin checks; the host checks a loaded module the same way. */
export function checkPlugin(plugin: unknown): asserts plugin is Plugin {
  const candidate = plugin as Partial<Plugin> | undefined;
  const parsed = identitySchema.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PluginDefinitionError(`plugin "${String(candidate?.name)}": ${issue?.path.join(".") || "definition"}: ${issue?.message}`);
  }
  const { name, apiVersion } = parsed.data;
  if (apiVersion !== PLUGIN_API_VERSION) {
    throw new PluginDefinitionError(
      `plugin "${name}" targets plugin API ${apiVersion}, but this agent speaks API ${PLUGIN_API_VERSION}; use a plugin version built for API ${PLUGIN_API_VERSION}.`,
    );
  }
  if (!(candidate?.options instanceof z.ZodType)) {
    throw new PluginDefinitionError(`plugin "${name}": options must be a zod schema (use z.object({}) for none).`);
  }
  for (const hook of ["collect", "start", "stop"] as const) {
    if (candidate[hook] !== undefined && typeof candidate[hook] !== "function") {
      throw new PluginDefinitionError(`plugin "${name}": ${hook} must be a function.`);
    }
  }
  if (!candidate.collect && !candidate.start) {
    throw new PluginDefinitionError(`plugin "${name}": define collect, or start and stop; it does nothing otherwise.`);
  }
}

const subjectSchema = z.strictObject({
  kind: z.enum(["agent", "service", "process", "host"]),
  id: z.string().min(1).max(512),
  name: z.string().max(256).optional(),
});
const labels = z.record(z.string().max(128), z.string().max(1024));
const time = z.number().int().positive().optional();

/** What the host accepts from a plugin's emitter; anything else is refused and counted as the plugin's error. */
export const emittedSchemas = {
  event: z.strictObject({
    kind: z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/, 'an event kind is dotted lowercase, e.g. "process.started"'),
    subject: subjectSchema,
    attributes: labels.optional(),
    evidence: z.unknown().optional(),
    time,
  }),
  metric: z.strictObject({
    name: z.string().regex(/^[a-z][a-z0-9_.]*$/, "a metric name is lowercase letters, digits, _ and ."),
    value: z.number().refine(Number.isFinite, "a metric value is a finite number"),
    subject: subjectSchema.optional(),
    labels: labels.optional(),
    time,
  }),
  connection: z.strictObject({
    protocol: z.enum(["tcp", "udp"]).optional(),
    localAddress: z.string().min(1).max(64),
    localPort: z.number().int().min(0).max(65535),
    remoteAddress: z.string().min(1).max(64),
    remotePort: z.number().int().min(0).max(65535),
    pid: z.number().int().positive().optional(),
    processName: z.string().max(256).optional(),
    subject: subjectSchema.optional(),
    time,
  }),
} as const;

const METRIC_KEYS = new Set(["name", "value", "subject", "labels", "time"]);
const SUBJECT_KEYS = new Set(["kind", "id", "name"]);
const SUBJECT_KINDS = new Set(["agent", "service", "process", "host"]);
const METRIC_NAME = /^[a-z][a-z0-9_.]*$/;

/**
 * The metric schema's answer where it is yes, without zod: a collect emits dozens of metrics,
 * and zod's generic walk costs 30-60 µs for each in an agent whose code is seldom hot enough
 * to be optimized (a quarter of the `passive` collect's CPU; docs/collectors.md). It is true
 * only where `emittedSchemas.metric` accepts the item as it is; anything else goes to zod,
 * which decides and says why. The contract's tests hold the two together.
 */
export function isWellFormedMetric(item: unknown): boolean {
  if (!isPlainObject(item) || !hasOnly(item, METRIC_KEYS)) return false;
  const { name, value, subject, labels, time } = item;
  return (
    typeof name === "string" &&
    METRIC_NAME.test(name) &&
    typeof value === "number" &&
    Number.isFinite(value) &&
    (subject === undefined || isWellFormedSubject(subject)) &&
    (labels === undefined || isWellFormedLabels(labels)) &&
    (time === undefined || (Number.isSafeInteger(time) && (time as number) > 0))
  );
}

function isWellFormedSubject(subject: unknown): boolean {
  if (!isPlainObject(subject) || !hasOnly(subject, SUBJECT_KEYS)) return false;
  const { kind, id, name } = subject;
  return (
    typeof kind === "string" &&
    SUBJECT_KINDS.has(kind) &&
    typeof id === "string" &&
    id.length >= 1 &&
    id.length <= 512 &&
    (name === undefined || (typeof name === "string" && name.length <= 256))
  );
}

function isWellFormedLabels(labels: unknown): boolean {
  if (!isPlainObject(labels)) return false;
  for (const key of Object.keys(labels)) {
    const value = labels[key];
    if (key.length > 128 || typeof value !== "string" || value.length > 1024) return false;
  }
  return true;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function hasOnly(object: Record<string, unknown>, keys: Set<string>): boolean {
  for (const key of Object.keys(object)) if (!keys.has(key)) return false;
  return true;
}
