/**
 * The coordinator's model of the application, as its HTTP API answers it: services across
 * agents, the dependency graph resolved to services, metric series and events. The CLI,
 * the dashboard and `coral ask` all read these shapes; `docs/cli.md` documents them.
 *
 * Times are Unix milliseconds. Compatibility: fields are only ever added.
 */
import * as z from "zod";

const time = z.number().int();

export const healthSchema = z.enum(["serving", "not_serving", "unknown"]);

/** One process (or unit) of a service, on one agent. */
export const serviceInstanceSchema = z.object({
  agent: z.string(),
  /** The service's identity on its agent: `unit:NAME`, `script:INTERPRETER PATH`, `exe:PATH` or the SDK's name. */
  key: z.string(),
  version: z.string().nullable(),
  /** How Coral knows it: `sdk` when the service embeds the Coral SDK, else `passive`. */
  source: z.enum(["passive", "sdk"]),
  /** The SDK's health where there is one; null for passive-only services. */
  health: z.string().nullable(),
  /** Listening sockets, `address:port`. */
  listening: z.array(z.string()),
  executable: z.string().nullable(),
  firstSeen: time,
  lastSeen: time,
  /** When its last process exited, as the passive collector saw it; null while one runs (or where only the SDK reports). */
  stoppedAt: time.nullable(),
});
export type ServiceInstance = z.infer<typeof serviceInstanceSchema>;

/** The far end of a dependency: a service of the mesh, or an address no agent knows. */
export const peerRefSchema = z.object({
  kind: z.enum(["service", "external"]),
  /** The service's name, or `address:port` for an external. */
  name: z.string(),
  port: z.number().int(),
  protocol: z.string(),
  lastSeen: time,
});

/**
 * A service as `GET /v1/services` lists it: one entry per name, summarised across its
 * instances, so the list stays small at a thousand agents (the instances of every service
 * then run to 40,000 objects). `GET /v1/services/NAME`, or the list with `?instances=true`,
 * adds the instances.
 */
export const serviceSummarySchema = z.object({
  /** A service is its name across agents. */
  name: z.string(),
  /** How many processes or units run it, on how many agents, and which (sorted). */
  instanceCount: z.number().int(),
  /** Of those, how many have not stopped: 0 when every instance's last process exited. */
  runningCount: z.number().int(),
  agents: z.array(z.string()),
  versions: z.array(z.string()),
  /** The ports its instances listen on, sorted. */
  ports: z.array(z.number().int()),
  source: z.enum(["passive", "sdk"]),
  /** `serving` when every SDK instance serves, `not_serving` when any does not, `unknown` without the SDK. */
  health: healthSchema,
  dependencies: z.array(peerRefSchema),
  dependents: z.array(peerRefSchema),
  firstSeen: time,
  lastSeen: time,
  /** Present with `?instances=true`. */
  instances: z.array(serviceInstanceSchema).optional(),
});
export type ServiceSummary = z.infer<typeof serviceSummarySchema>;

/** One service with every instance: `GET /v1/services/NAME`. */
export const serviceViewSchema = serviceSummarySchema.extend({ instances: z.array(serviceInstanceSchema) });
export type ServiceView = z.infer<typeof serviceViewSchema>;

export const servicesResponseSchema = z.object({ services: z.array(serviceSummarySchema) });
export type ServicesResponse = z.infer<typeof servicesResponseSchema>;

export const serviceResponseSchema = z.object({ service: serviceViewSchema });
export type ServiceResponse = z.infer<typeof serviceResponseSchema>;

export const topologyNodeSchema = z.object({
  /** `service:NAME` or `external:ADDRESS:PORT`. */
  id: z.string(),
  kind: z.enum(["service", "external"]),
  name: z.string(),
  /** The agents a service runs on; empty for an external. */
  agents: z.array(z.string()),
});

export const topologyEdgeSchema = z.object({
  from: z.string(),
  to: z.string(),
  port: z.number().int(),
  protocol: z.string(),
  firstSeen: time,
  lastSeen: time,
  /** How many times the connection was seen (one per collect that saw it) within the window. */
  observations: z.number().int(),
  /** The same, per hour (start of the hour → count), oldest first. */
  hours: z.array(z.object({ hour: time, observations: z.number().int() })),
  /** The agent-level connections this edge aggregates: which agent saw it, toward which address. */
  via: z.array(z.object({ agent: z.string(), address: z.string() })),
});

export const topologyResponseSchema = z.object({
  window: z.object({ from: time, to: time }),
  nodes: z.array(topologyNodeSchema),
  edges: z.array(topologyEdgeSchema),
});
export type TopologyResponse = z.infer<typeof topologyResponseSchema>;
export type TopologyEdge = z.infer<typeof topologyEdgeSchema>;
export type TopologyNode = z.infer<typeof topologyNodeSchema>;

export const metricResolutionSchema = z.enum(["raw", "1m", "1h"]);
export type MetricResolution = z.infer<typeof metricResolutionSchema>;

/** One point: a raw sample (min = max = avg, count 1) or a rollup bucket starting at `t`. */
export const metricPointSchema = z.object({
  t: time,
  avg: z.number(),
  min: z.number(),
  max: z.number(),
  count: z.number().int(),
});
export type MetricPoint = z.infer<typeof metricPointSchema>;

export const metricSeriesSchema = z.object({
  agent: z.string(),
  metric: z.string(),
  /** The subject's id on its agent (the service key, or `host`). */
  subject: z.string(),
  labels: z.record(z.string(), z.string()),
  source: z.string().nullable(),
  points: z.array(metricPointSchema),
});

export const metricsResponseSchema = z.object({
  service: z.string(),
  window: z.object({ from: time, to: time }),
  resolution: metricResolutionSchema,
  /** Every metric name the service has, whichever were asked for. */
  metrics: z.array(z.string()),
  series: z.array(metricSeriesSchema),
});
export type MetricsResponse = z.infer<typeof metricsResponseSchema>;
export type MetricSeries = z.infer<typeof metricSeriesSchema>;

export const eventViewSchema = z.object({
  id: z.number().int(),
  /** The agent that observed it, or null for the coordinator's observations of itself (discovery). */
  agent: z.string().nullable(),
  kind: z.string(),
  /** When it happened by the clock of whoever observed it. */
  time: time,
  /** `time` corrected by the agent's estimated clock offset: the coordinator's clock. Order by this across hosts. */
  coordinatorTime: time,
  /** When the coordinator stored it. */
  receivedAt: time,
  subject: z.object({ kind: z.string(), id: z.string(), name: z.string().nullable() }),
  attributes: z.record(z.string(), z.string()),
  evidence: z.unknown(),
  /** The plugin that observed it, or `coordinator`. */
  source: z.string().nullable(),
});
export type EventView = z.infer<typeof eventViewSchema>;

export const eventsResponseSchema = z.object({
  events: z.array(eventViewSchema),
  /** Pass as `before` for the next (older) page; null when there is none. */
  next: z.number().int().nullable(),
});
export type EventsResponse = z.infer<typeof eventsResponseSchema>;

/** Query strings of the model's routes. */
export const eventsQuerySchema = z.strictObject({
  since: z.coerce.number().int("since is a time in Unix milliseconds").min(0).default(0),
  /** Only events with an id below this (the previous page's `next`). */
  before: z.coerce.number().int("before is an event id").min(1).optional(),
  agent: z.string().min(1).max(64).optional(),
  kind: z.string().min(1).max(64).optional(),
  /** Only events whose subject is named so (a service's events, and its processes'). */
  service: z.string().min(1).max(256).optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(500),
});

/**
 * `?fields=a,b,c`: only these fields of each item, for a reader that needs a few of them (the
 * dashboard's map asks for a fifth of the bytes). A comma-separated list of the item's field
 * names; `always` are sent whether named or not (what identifies the item).
 */
function fieldsParam<const F extends readonly [string, ...string[]]>(fields: F, always: readonly F[number][]) {
  const known = new Set<string>(fields);
  return z
    .string()
    .max(512)
    .transform((text, ctx) => {
      const names = text.split(",").filter((name) => name !== "");
      const unknown = names.filter((name) => !known.has(name));
      if (names.length === 0 || unknown.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `${unknown.length > 0 ? `no field ${unknown.join(", ")}; ` : ""}name one or more of ${fields.join(", ")}, comma-separated`,
        });
        return z.NEVER;
      }
      return [...new Set([...always, ...names])] as F[number][];
    })
    .optional();
}

/** What `?fields=` on `GET /v1/topology` may name: fields of each edge (`from` and `to` always come). */
export const topologyEdgeFields = ["from", "to", "port", "protocol", "firstSeen", "lastSeen", "observations", "hours", "via"] as const;
export type TopologyEdgeField = (typeof topologyEdgeFields)[number];

export const topologyQuerySchema = z.strictObject({
  /** The window: edges seen within [since, until]. Default: the last hour. */
  since: z.coerce.number().int().min(0).optional(),
  until: z.coerce.number().int().min(0).optional(),
  /** Only these fields of each edge; the nodes are whole. */
  fields: fieldsParam(topologyEdgeFields, ["from", "to"]),
});

export const metricsQuerySchema = z.strictObject({
  metric: z.string().min(1).max(128).optional(),
  since: z.coerce.number().int().min(0).optional(),
  until: z.coerce.number().int().min(0).optional(),
  resolution: metricResolutionSchema.optional(),
});

/** What `?fields=` on `GET /v1/services` may name (`name` always comes). */
export const serviceSummaryFields = [
  "name",
  "instanceCount",
  "runningCount",
  "agents",
  "versions",
  "ports",
  "source",
  "health",
  "dependencies",
  "dependents",
  "firstSeen",
  "lastSeen",
] as const;
export type ServiceSummaryField = (typeof serviceSummaryFields)[number];

/** `GET /v1/services?instances=true`: the list with every service's instances; `?fields=`: only these fields of each. */
export const servicesQuerySchema = z.strictObject({
  instances: z.enum(["true", "false"]).optional(),
  fields: fieldsParam(serviceSummaryFields, ["name"]),
});

/** The latest sample of one service instance's metric: `GET /v1/metrics/latest`. */
export const latestSampleSchema = z.object({
  service: z.string(),
  agent: z.string(),
  /** The instance's key on its agent. */
  key: z.string(),
  metric: z.string(),
  t: time,
  value: z.number(),
});
export type LatestSample = z.infer<typeof latestSampleSchema>;

export const latestMetricsResponseSchema = z.object({
  /** Samples older than this are left out: the instance has stopped reporting. */
  since: time,
  samples: z.array(latestSampleSchema),
});
export type LatestMetricsResponse = z.infer<typeof latestMetricsResponseSchema>;

export const latestMetricsQuerySchema = z.strictObject({
  /** Metric names, comma-separated. Default: `service.cpu.cores,service.memory.rss_bytes`. */
  metric: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]+(,[A-Za-z0-9_.:-]+){0,15}$/, "metric is up to 16 metric names, comma-separated")
    .optional(),
});
