/**
 * Findings: what the coordinator's analysis concluded is wrong, why, and what to do. The JSON
 * contracts of `GET /v1/findings`, `GET /v1/findings/:id` and `GET /v1/summary`, read by the
 * CLI, the dashboard and `coral ask` alike. Times are Unix milliseconds by the coordinator's clock.
 */
import { z } from "zod";

const time = z.number().int();

/** Every detector's kind (docs/findings.md has each one's rule and thresholds). */
export const findingKinds = [
  "crash-loop",
  "bad-deploy",
  "cpu-saturation",
  "memory-leak",
  "resource-spike",
  "oom-kill",
  "dependency-down",
  "health-failing",
  "host-pressure",
  "agent-offline",
  "plugin-failed",
] as const;
export const findingKindSchema = z.enum(findingKinds);
export type FindingKind = z.infer<typeof findingKindSchema>;

/** Most severe first: the order `coral findings` lists them in. */
export const severities = ["critical", "warning", "info"] as const;
export const severitySchema = z.enum(severities);
export type Severity = z.infer<typeof severitySchema>;

export const findingStateSchema = z.enum(["open", "resolved"]);
export type FindingState = z.infer<typeof findingStateSchema>;

export const recommendationActions = ["rollback", "restart", "scale", "fix-dependency", "free-resource", "investigate"] as const;
export const recommendationSchema = z.object({
  action: z.enum(recommendationActions),
  /** The concrete step, for a person: "roll api back to 2.4.0 (…/api-2.4.0)". */
  step: z.string(),
  /** What the step names, for a program: e.g. { version: "2.4.0" } for a rollback. */
  target: z.record(z.string(), z.string()).optional(),
});
export type Recommendation = z.infer<typeof recommendationSchema>;

/** Where a finding's cause lies; a cascade's dependents point at the dependency that failed. */
export const rootCauseSchema = z.object({
  service: z.string().nullable(),
  agent: z.string().nullable(),
  kind: findingKindSchema,
  /** The finding that is the root, when it is another one. */
  findingId: z.string().optional(),
});
export type RootCause = z.infer<typeof rootCauseSchema>;

/** A metric window the detector read: the series, the span, and what it found in it. */
export const metricWindowSchema = z.object({
  agent: z.string(),
  /** The service key on its agent, or "host". */
  subject: z.string(),
  metric: z.string(),
  labels: z.record(z.string(), z.string()).optional(),
  since: time,
  until: time,
  /** e.g. { first, last, slopePerHour, median, mad, max, limit }. */
  summary: z.record(z.string(), z.number()),
});
export type MetricWindow = z.infer<typeof metricWindowSchema>;

export const evidenceSchema = z.object({
  /** Stored events (ids in `GET /v1/events`) that show it, oldest first. */
  events: z.array(z.object({ id: z.number().int(), kind: z.string(), time: time, agent: z.string().nullable() })),
  metrics: z.array(metricWindowSchema),
  /** Dependency edges, service to service. */
  edges: z.array(z.object({ from: z.string(), to: z.string() })),
  /** SDK checks and health, as the SDK reported them. */
  checks: z.array(z.object({ name: z.string(), passing: z.boolean(), since: time })),
  /** One line each, in order: the reasoning a person can follow. */
  notes: z.array(z.string()),
});
export type Evidence = z.infer<typeof evidenceSchema>;

export const findingSchema = z.object({
  id: z.string(),
  kind: findingKindSchema,
  severity: severitySchema,
  state: findingStateSchema,
  /** The service showing it (null for an agent's or a host's finding). */
  service: z.string().nullable(),
  agent: z.string().nullable(),
  rootCause: rootCauseSchema,
  summary: z.string(),
  confidence: z.number().min(0).max(1),
  evidence: evidenceSchema,
  recommendation: recommendationSchema,
  openedAt: time,
  updatedAt: time,
  resolvedAt: time.nullable(),
  /** When its signals first showed, which may be before it was opened (the detector's window). */
  since: time,
});
export type Finding = z.infer<typeof findingSchema>;

export const findingsResponseSchema = z.object({ findings: z.array(findingSchema) });
export type FindingsResponse = z.infer<typeof findingsResponseSchema>;
export const findingResponseSchema = z.object({ finding: findingSchema });
export type FindingResponse = z.infer<typeof findingResponseSchema>;

/** `GET /v1/findings`: open ones by default; `all` adds the resolved ones. */
export const findingsQuerySchema = z.strictObject({
  all: z.enum(["true", "false"]).optional(),
  service: z.string().min(1).max(256).optional(),
  agent: z.string().min(1).max(64).optional(),
  kind: findingKindSchema.optional(),
  since: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(200),
});

/** Open findings by severity, for `coral status`. */
export const findingCountsSchema = z.object({ critical: z.number().int(), warning: z.number().int(), info: z.number().int() });
export type FindingCounts = z.infer<typeof findingCountsSchema>;

export const summaryQuerySchema = z.strictObject({
  /** Milliseconds back from now; the CLI turns `--since 24h` into it. Default a day. */
  window: z.coerce
    .number()
    .int()
    .min(60_000)
    .max(90 * 86_400_000)
    .default(86_400_000),
});

/** `GET /v1/summary`: the digest of a window. */
export const summaryResponseSchema = z.object({
  since: time,
  until: time,
  changes: z.object({
    deploys: z.array(
      z.object({
        service: z.string(),
        agent: z.string().nullable(),
        from: z.string().nullable(),
        to: z.string().nullable(),
        time: time,
        eventId: z.number().int(),
      }),
    ),
    newServices: z.array(z.object({ service: z.string(), firstSeen: time })),
    newDependencies: z.array(z.object({ from: z.string(), to: z.string(), firstSeen: time })),
  }),
  /** What broke in the window, and what cleared it (a finding resolved, after which event). */
  incidents: z.array(z.object({ finding: findingSchema, fixedBy: z.string().nullable() })),
  /** Services seen in the window that had no finding of severity warning or above. */
  quiet: z.array(z.string()),
  open: findingCountsSchema,
  sdk: z.object({
    /** Share of services observed through the SDK, 0–1. */
    adoption: z.number().min(0).max(1),
    sdkServices: z.array(z.string()),
    /** What each passive-only service would gain from the SDK. */
    passiveOnly: z.array(z.object({ service: z.string(), gain: z.string() })),
  }),
});
export type SummaryResponse = z.infer<typeof summaryResponseSchema>;

/**
 * One detector's thresholds, overridable in `coordinator.json` under
 * `analysis.detectors.KIND` (every service) and `analysis.services.NAME.KIND` (one service);
 * `enabled: false` turns a detector off. Each detector documents the keys it reads.
 */
export const detectorOverridesSchema = z.record(z.string(), z.union([z.number(), z.boolean()]));
export const analysisConfigSchema = z.strictObject({
  detectors: z.partialRecord(findingKindSchema, detectorOverridesSchema).optional(),
  services: z.record(z.string(), z.partialRecord(findingKindSchema, detectorOverridesSchema)).optional(),
});
export type AnalysisConfig = z.infer<typeof analysisConfigSchema>;

/** Webhooks told when a finding opens or resolves. */
export const notificationsConfigSchema = z.strictObject({
  webhooks: z
    .array(
      z.strictObject({
        url: z.url(),
        /** `json`: the finding as `{ event, finding }`; `slack`: an incoming-webhook message. */
        format: z.enum(["json", "slack"]).default("json"),
        /** Only findings at least this severe. */
        minSeverity: severitySchema.default("warning"),
      }),
    )
    .default([]),
});
export type NotificationsConfig = z.infer<typeof notificationsConfigSchema>;
