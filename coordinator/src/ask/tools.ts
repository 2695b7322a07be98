/**
 * The tools `coral ask`'s model and MCP clients call over the store. Each reads through the
 * same named queries as the API's routes, so a tool and `coral services` never disagree;
 * each answers a compact, redacted, bounded view (times as ISO text, metric windows as
 * summaries, lists a page at a time) with the citations of what it shows.
 */
import {
  type Citation,
  CoralError,
  describeIssues,
  type EventView,
  type Finding,
  findingKindSchema,
  issueDetails,
  type MetricSeries,
  parseDuration,
  severitySchema,
} from "@coral-mesh/sdk-proto";
import * as z from "zod";
import type { AgentView } from "../api/agent-views.js";
import { agentLister } from "../api/agent-views.js";
import { DEPENDENCY_WINDOW_MS } from "../api/routes/services-list.js";
import type { Store } from "../store/db.js";
import { getFinding, listFindings, summary } from "../store/finding-queries.js";
import { INSTANCE_METRICS } from "../store/latest-metrics.js";
import { eventsByIds, getService, listEvents, listServices, serviceMetrics, topology } from "../store/queries.js";
import { HOUR_MS } from "../store/rollups.js";
import { bounded, dedupe, fitList } from "./bound.js";
import { redactValue } from "./redact.js";
import type { AskTool, ToolResult } from "./tool.js";

export interface AskToolsOptions {
  db: Store;
  now?: () => number;
  /** The API's agent views (health and path need the hub's peers); without it, health from the store alone. */
  agents?: () => Promise<AgentView[]>;
}

const DAY_MS = 24 * HOUR_MS;

/** A tool whose input type follows from its schema. */
function tool<S extends z.ZodType>(definition: {
  name: string;
  description: string;
  input: S;
  run(input: z.infer<S>, signal?: AbortSignal): Promise<ToolResult>;
}): AskTool {
  return definition as unknown as AskTool;
}

const iso = (t: number | null | undefined): string | null =>
  t === null || t === undefined || !Number.isFinite(t) ? null : new Date(t).toISOString();

const timeInput = (what: string) =>
  z
    .union([z.number().int().nonnegative(), z.string().min(1).max(40)])
    .optional()
    .describe(`${what}: an ISO time (2026-11-29T10:00:00Z), Unix milliseconds, or a span back from now (30m, 2h, 7d)`);

/** A time as a tool takes it; what it cannot read is an `invalid_tool_input` naming the field. */
function timeOf(value: number | string | undefined, field: string, now: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "number") return value;
  const span = parseDuration(value);
  if (span !== undefined) return now - span;
  const parsed = Date.parse(value);
  if (Number.isNaN(parsed)) {
    throw new CoralError(
      "invalid_tool_input",
      `${field}: "${value}" is not a time; give an ISO time (2026-11-29T10:00:00Z), Unix milliseconds, or a span back from now (30m, 2h, 7d).`,
    );
  }
  return parsed;
}

function windowOf(input: { since?: number | string | undefined; until?: number | string | undefined }, now: number, span: number) {
  const until = timeOf(input.until, "until", now) ?? now;
  const since = timeOf(input.since, "since", now) ?? until - span;
  if (since > until) throw new CoralError("invalid_tool_input", "since: the window starts after it ends; give a since before until.");
  return { since, until };
}

/** A cursor a result gave: a whole number, as text. */
function cursorOf(cursor: string | undefined, tool: string): number | undefined {
  if (cursor === undefined) return undefined;
  if (!/^\d{1,15}$/.test(cursor)) {
    throw new CoralError(
      "invalid_tool_input",
      `cursor: "${cursor}" is not a cursor ${tool} gave; pass the cursor of its last result, or none.`,
    );
  }
  return Number(cursor);
}

/** The service's name: one the store knows, in its own spelling, else service_not_found for a model. */
function notFound(kind: "service" | "finding", name: string): CoralError {
  return kind === "service"
    ? new CoralError("service_not_found", `No service named ${name}; list_services lists them.`)
    : new CoralError("finding_not_found", `No finding has id ${name}; list_findings lists them (state "all" for resolved ones).`);
}

const edgeId = (from: string, to: string, port: number) => `${from}->${to}:${port}`;
const nodeName = (id: string) => id.replace(/^(service|external):/, "");

/** A finding in a line or two: enough to rank and choose; get_finding has the rest. */
export function compactFinding(f: Finding) {
  return {
    id: f.id,
    kind: f.kind,
    severity: f.severity,
    state: f.state,
    service: f.service,
    agent: f.agent,
    summary: f.summary,
    confidence: f.confidence,
    rootCause: f.rootCause,
    recommendation: f.recommendation.step,
    openedAt: iso(f.openedAt),
    resolvedAt: iso(f.resolvedAt),
  };
}

function compactEvent(e: EventView) {
  return {
    id: e.id,
    time: iso(e.coordinatorTime),
    kind: e.kind,
    agent: e.agent,
    subject: e.subject.name ?? e.subject.id,
    ...(e.subject.name && e.subject.name !== e.subject.id ? { subjectId: e.subject.id } : {}),
    attributes: e.attributes,
    ...(e.evidence && typeof e.evidence === "object" && Object.keys(e.evidence).length > 0 ? { evidence: e.evidence } : {}),
  };
}

const round = (n: number) => (Number.isFinite(n) ? Number(n.toPrecision(4)) : n);

/** A metric series as a summary a model can read: no raw points. */
export function summariseSeries(series: MetricSeries, window: { since: number; until: number }, maxBuckets = 24) {
  const points = series.points;
  const base = {
    agent: series.agent,
    subject: series.subject,
    metric: series.metric,
    ...(Object.keys(series.labels).length ? { labels: series.labels } : {}),
  };
  if (points.length === 0) return { ...base, count: 0 };
  const values = points.map((p) => p.avg).sort((a, b) => a - b);
  const quantile = (q: number) => values[Math.min(values.length - 1, Math.floor(q * (values.length - 1) + 0.5))] as number;
  // Least squares over the points' averages: the trend in units per hour.
  const n = points.length;
  const meanT = points.reduce((s, p) => s + p.t, 0) / n;
  const meanV = points.reduce((s, p) => s + p.avg, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - meanT) * (p.avg - meanV);
    den += (p.t - meanT) ** 2;
  }
  const width = Math.max(1, Math.ceil((window.until - window.since) / maxBuckets));
  const buckets = new Map<number, { sum: number; count: number; max: number }>();
  for (const p of points) {
    const start = window.since + Math.floor((p.t - window.since) / width) * width;
    const b = buckets.get(start) ?? { sum: 0, count: 0, max: Number.NEGATIVE_INFINITY };
    b.sum += p.avg * p.count;
    b.count += p.count;
    b.max = Math.max(b.max, p.max);
    buckets.set(start, b);
  }
  const last = points.at(-1) as (typeof points)[number];
  return {
    ...base,
    count: points.reduce((s, p) => s + p.count, 0),
    min: round(Math.min(...points.map((p) => p.min))),
    median: round(quantile(0.5)),
    p95: round(quantile(0.95)),
    max: round(Math.max(...points.map((p) => p.max))),
    first: round(points[0]?.avg ?? 0),
    last: round(last.avg),
    lastAt: iso(last.t),
    trendPerHour: den === 0 ? 0 : round((num / den) * HOUR_MS),
    bucketMs: width,
    buckets: [...buckets].sort(([a], [b]) => a - b).map(([t, b]) => ({ t: iso(t), avg: round(b.sum / b.count), max: round(b.max) })),
  };
}

export function createAskTools(options: AskToolsOptions): AskTool[] {
  const { db } = options;
  const now = () => options.now?.() ?? Date.now();
  const agentViews = options.agents ?? agentLister({ db, heartbeatIntervalMs: 10_000, peers: async () => new Map(), now });

  return [
    tool({
      name: "list_services",
      description:
        "Every service across the mesh's agents: health, instances running, agents, versions, ports, and what it depends on and what depends on it (seen in the last 24 h). A page at a time: pass the cursor of the last result for the next.",
      input: z.strictObject({
        name_contains: z.string().min(1).max(100).optional().describe("only services whose name contains this (case-insensitive)"),
        cursor: z.string().max(20).optional().describe("the cursor of the previous page"),
      }),
      async run(input) {
        const at = now();
        const offset = cursorOf(input.cursor, "list_services") ?? 0;
        const needle = input.name_contains?.toLowerCase();
        const all = listServices(db, at - DEPENDENCY_WINDOW_MS, at)
          .filter((s) => !needle || s.name.toLowerCase().includes(needle))
          .map((s) =>
            redactValue({
              name: s.name,
              health: s.health,
              source: s.source,
              running: s.runningCount,
              instances: s.instanceCount,
              agents: s.agents.length > 8 ? [...s.agents.slice(0, 8), `… ${s.agents.length - 8} more`] : s.agents,
              versions: s.versions,
              ports: s.ports,
              dependsOn: s.dependencies.map((d) => `${d.name}${d.kind === "service" ? `:${d.port}` : ""}`),
              dependents: s.dependents.map((d) => d.name),
              lastSeen: iso(s.lastSeen),
            }),
          );
        const rest = all.slice(offset);
        const { content, kept, cut } = fitList(rest, (page, cut) => ({
          total: all.length,
          services: page,
          ...(cut || offset + page.length < all.length
            ? { truncated: true, cursor: String(offset + page.length), hint: "call list_services with this cursor for the rest" }
            : {}),
        }));
        return bounded(
          content,
          kept.map((s) => ({ kind: "service", id: s.name })),
          cut,
        );
      },
    }),

    tool({
      name: "get_service",
      description:
        "One service in detail: its instances by agent (version, health, listening sockets, stopped or running), recent deploys, what the Coral SDK reports (SDK and runtime, named checks passing or failing), its dependencies and dependents, and its open findings.",
      input: z.strictObject({ name: z.string().min(1).max(256).describe("the service's name, as list_services gives it") }),
      async run(input) {
        const at = now();
        let service: ReturnType<typeof getService>;
        try {
          service = getService(db, input.name, at - DEPENDENCY_WINDOW_MS, at);
        } catch (error) {
          if (error instanceof CoralError && error.code === "service_not_found") throw notFound("service", input.name);
          throw error;
        }
        const deploys = listEvents(db, { since: at - 7 * DAY_MS, kind: "service.deployed", service: service.name, limit: 10 }).events;
        const observed = listEvents(db, { since: 0, kind: "service.observed", service: service.name, limit: 50 }).events;
        const sdk = new Map<string, Record<string, unknown>>();
        for (const e of observed) {
          if (e.attributes.source !== "sdk" || !e.agent || sdk.has(e.agent)) continue;
          const evidence = (e.evidence ?? {}) as { build?: unknown };
          sdk.set(e.agent, {
            agent: e.agent,
            sdk: e.attributes.sdk ?? null,
            runtime: e.attributes.runtime ?? null,
            version: e.attributes.version ?? null,
            build: typeof evidence.build === "string" ? evidence.build : null,
            reportedAt: iso(e.coordinatorTime),
          });
        }
        const checkSeries = serviceMetrics(db, service.name, {
          metric: "service.check.passing",
          since: at - 15 * 60_000,
          until: at,
          resolution: "raw",
        }).series;
        const checks = checkSeries.flatMap((s) => {
          const last = s.points.at(-1);
          return last ? [{ name: s.labels.check ?? "?", agent: s.agent, passing: last.avg === 1, at: iso(last.t) }] : [];
        });
        const checkChanges = listEvents(db, { since: at - DAY_MS, kind: "service.check_changed", service: service.name, limit: 10 }).events;
        const findings = listFindings(db, { service: service.name, limit: 10 });
        const content = redactValue({
          name: service.name,
          health: service.health,
          source: service.source,
          running: service.runningCount,
          instanceCount: service.instanceCount,
          agents: service.agents,
          versions: service.versions,
          ports: service.ports,
          dependsOn: service.dependencies.map((d) => ({ kind: d.kind, name: d.name, port: d.port, lastSeen: iso(d.lastSeen) })),
          dependents: service.dependents.map((d) => ({ name: d.name, port: d.port, lastSeen: iso(d.lastSeen) })),
          firstSeen: iso(service.firstSeen),
          lastSeen: iso(service.lastSeen),
          deploys: deploys.map((e) => ({
            eventId: e.id,
            time: iso(e.coordinatorTime),
            agent: e.agent,
            from: e.attributes.from ?? null,
            to: e.attributes.to ?? e.attributes.version ?? e.attributes.exe ?? null,
          })),
          sdk: [...sdk.values()],
          checks,
          checkChanges: checkChanges.map((e) => ({
            eventId: e.id,
            time: iso(e.coordinatorTime),
            check: e.attributes.check,
            to: e.attributes.to,
          })),
          openFindings: findings.map((f) => ({ id: f.id, kind: f.kind, severity: f.severity, summary: f.summary })),
        });
        const instances = service.instances.map((i) =>
          redactValue({
            agent: i.agent,
            key: i.key,
            version: i.version,
            source: i.source,
            health: i.health,
            listening: i.listening,
            executable: i.executable,
            running: i.stoppedAt === null,
            ...(i.stoppedAt !== null ? { stoppedAt: iso(i.stoppedAt) } : {}),
            lastSeen: iso(i.lastSeen),
          }),
        );
        const { content: out, cut } = fitList(instances, (kept, cut) => ({
          ...content,
          instances: kept,
          ...(cut ? { truncated: true, hint: `${kept.length} of ${instances.length} instances shown` } : {}),
        }));
        const citations: Citation[] = [
          { kind: "service", id: service.name },
          ...deploys.map((e) => ({ kind: "event" as const, id: String(e.id) })),
          ...checkChanges.map((e) => ({ kind: "event" as const, id: String(e.id) })),
          ...findings.map((f) => ({ kind: "finding" as const, id: f.id })),
        ];
        return bounded(out, citations, cut);
      },
    }),

    tool({
      name: "get_topology",
      description:
        "The dependency graph: which service calls which (and which outside addresses), resolved across agents. With a service, its neighbourhood to a depth (1: what it calls and what calls it); without, the whole graph, bounded. Default window: the last 24 h.",
      input: z.strictObject({
        service: z.string().min(1).max(256).optional().describe("the service at the centre"),
        depth: z.number().int().min(1).max(4).optional().describe("hops from the service, 1 to 4 (default 1)"),
        since: timeInput("edges seen since"),
        until: timeInput("edges seen until"),
      }),
      async run(input) {
        const at = now();
        const window = windowOf(input, at, DAY_MS);
        const graph = topology(db, window);
        let nodes = graph.nodes;
        let edges = graph.edges;
        if (input.service !== undefined) {
          const centre = `service:${input.service}`;
          if (!nodes.some((n) => n.id === centre)) {
            if (!listServices(db, window.since, at, { only: input.service }).length) throw notFound("service", input.service);
          }
          // Breadth first over edges either way: the order the result is cut in, nearest first.
          const distance = new Map([[centre, 0]]);
          const taken = new Set<(typeof edges)[number]>();
          const order: typeof edges = [];
          let frontier = new Set([centre]);
          for (let hop = 1; hop <= (input.depth ?? 1) && frontier.size > 0; hop++) {
            const next = new Set<string>();
            for (const e of edges) {
              const other = frontier.has(e.from) ? e.to : frontier.has(e.to) ? e.from : undefined;
              if (other === undefined || taken.has(e)) continue;
              taken.add(e);
              order.push(e);
              if (!distance.has(other)) {
                distance.set(other, hop);
                next.add(other);
              }
            }
            frontier = next;
          }
          edges = order;
          nodes = nodes.filter((n) => distance.has(n.id)).sort((a, b) => (distance.get(a.id) ?? 0) - (distance.get(b.id) ?? 0));
        } else {
          edges = [...edges].sort((a, b) => b.observations - a.observations);
        }
        const shownEdges = edges.map((e) =>
          redactValue({
            from: nodeName(e.from),
            to: nodeName(e.to),
            toKind: e.to.startsWith("external:") ? "external" : "service",
            port: e.port,
            protocol: e.protocol,
            observations: e.observations,
            lastSeen: iso(e.lastSeen),
          }),
        );
        const shownNodes = nodes.map((n) => redactValue({ name: n.name, kind: n.kind, agents: n.agents }));
        const { content, kept, cut } = fitList(shownEdges, (page, cut) => {
          const names = new Set(page.flatMap((e) => [e.from, e.to]));
          if (input.service) names.add(input.service);
          return {
            window: { since: iso(window.since), until: iso(window.until) },
            ...(input.service ? { centre: input.service, depth: input.depth ?? 1 } : {}),
            nodes: cut ? shownNodes.filter((n) => names.has(n.name)) : shownNodes,
            edges: page,
            ...(cut
              ? {
                  truncated: true,
                  hint: `${page.length} of ${shownEdges.length} edges shown (${input.service ? "nearest" : "busiest"} first); ${input.service ? "lower the depth" : "name a service"} to see less`,
                }
              : {}),
          };
        });
        const citations: Citation[] = [
          ...(input.service ? [{ kind: "service" as const, id: input.service }] : []),
          ...kept.map((e) => ({ kind: "edge" as const, id: edgeId(e.from, e.to, e.port) })),
        ];
        return bounded(content, citations, cut);
      },
    }),

    tool({
      name: "list_events",
      description:
        "What agents and the coordinator observed (process starts, exits and restarts, deploys, health and check changes, OOM kills, ports, agents going offline), newest first, filtered. At most 50 a call; pass the cursor of the last result for older ones.",
      input: z.strictObject({
        service: z.string().min(1).max(256).optional().describe("only events about this service (and its processes)"),
        agent: z.string().min(1).max(64).optional().describe("only events this agent observed"),
        kind: z.string().min(1).max(64).optional().describe("only events of this kind, e.g. process.restarted, service.deployed"),
        since: timeInput("only events since"),
        until: timeInput("only events until"),
        cursor: z.string().max(20).optional().describe("the cursor of the previous page: older events"),
        limit: z.number().int().min(1).max(50).optional().describe("at most this many, 1 to 50 (default 20)"),
      }),
      async run(input) {
        const at = now();
        const since = timeOf(input.since, "since", at) ?? 0;
        const until = timeOf(input.until, "until", at);
        const limit = input.limit ?? 20;
        const page = listEvents(db, {
          since,
          until,
          before: cursorOf(input.cursor, "list_events"),
          agent: input.agent,
          kind: input.kind,
          service: input.service,
          limit,
        });
        const shown = page.events.map((e) => redactValue(compactEvent(e)));
        const { content, kept, cut } = fitList(shown, (events, cut) => {
          const next = cut ? events.at(-1)?.id : page.next;
          const cursor = next === undefined || next === null ? null : String(next);
          return {
            events,
            cursor,
            ...(cut
              ? { truncated: true, hint: `${events.length} of ${shown.length} events fit; call again with this cursor for the rest` }
              : {}),
            ...(!cut && cursor ? { hint: "older events: call again with this cursor" } : {}),
          };
        });
        return bounded(
          content,
          kept.map((e) => ({ kind: "event", id: String(e.id) })),
          cut,
        );
      },
    }),

    tool({
      name: "get_metrics",
      description:
        "A service's metric over a window, summarised per instance: min, median, p95, max, first and last, the trend per hour, and at most 24 buckets (average and maximum) — never raw points. Without a metric, CPU (service.cpu.cores) and memory (service.memory.rss_bytes), and the names of every metric the service has. Default window: the last hour.",
      input: z.strictObject({
        service: z.string().min(1).max(256).describe("the service's name"),
        metric: z.string().min(1).max(128).optional().describe("e.g. service.cpu.cores, service.memory.rss_bytes, service.restarts"),
        since: timeInput("the window's start"),
        until: timeInput("the window's end"),
      }),
      async run(input) {
        const at = now();
        const window = windowOf(input, at, HOUR_MS);
        let response: ReturnType<typeof serviceMetrics>;
        try {
          response = serviceMetrics(db, input.service, { ...window, ...(input.metric ? { metric: input.metric } : {}) });
        } catch (error) {
          if (error instanceof CoralError && error.code === "service_not_found") throw notFound("service", input.service);
          throw error;
        }
        const wanted = input.metric ? [input.metric] : INSTANCE_METRICS.filter((m) => response.metrics.includes(m));
        const series = response.series.filter((s) => wanted.includes(s.metric));
        const perSeries = series.length > 4 ? 8 : 24;
        const summaries = series.map((s) => redactValue(summariseSeries(s, window, perSeries)));
        const { content, kept, cut } = fitList(summaries, (page, cut) => ({
          service: response.service,
          window: { since: iso(window.since), until: iso(window.until) },
          resolution: response.resolution,
          metrics: response.metrics,
          ...(input.metric && !response.metrics.includes(input.metric)
            ? { hint: `${input.service} has no metric ${input.metric}; metrics lists those it has` }
            : {}),
          series: page,
          ...(cut
            ? { truncated: true, hint: `${page.length} of ${summaries.length} series shown; ask for one metric, or a shorter window` }
            : {}),
        }));
        const citations: Citation[] = [
          { kind: "service", id: response.service },
          ...[...new Set(kept.map((s) => s.metric))].map((m) => ({ kind: "metric" as const, id: `${response.service}:${m}` })),
        ];
        return bounded(content, citations, cut);
      },
    }),

    tool({
      name: "list_findings",
      description:
        "What the findings engine concluded is wrong, ranked (open first, most severe, most confident): each with its kind, service, summary, root cause and the recommended step. get_finding has one's evidence.",
      input: z.strictObject({
        state: z.enum(["open", "resolved", "all"]).optional().describe("open (default), resolved, or all"),
        service: z.string().min(1).max(256).optional().describe("only findings on this service, or whose root cause it is"),
        severity: severitySchema.optional(),
        kind: findingKindSchema.optional(),
        limit: z.number().int().min(1).max(50).optional().describe("at most this many, 1 to 50 (default 20)"),
      }),
      async run(input) {
        const state = input.state ?? "open";
        const found = listFindings(db, {
          ...(state === "all" ? { all: true } : { state }),
          service: input.service,
          severity: input.severity,
          kind: input.kind,
          limit: input.limit ?? 20,
        });
        const shown = found.map((f) => redactValue(compactFinding(f)));
        const { content, kept, cut } = fitList(shown, (findings, cut) => ({
          findings,
          ...(cut
            ? { truncated: true, hint: `${findings.length} of ${shown.length} shown; filter by service or severity for the rest` }
            : {}),
        }));
        return bounded(
          content,
          kept.map((f) => ({ kind: "finding", id: f.id })),
          cut,
        );
      },
    }),

    tool({
      name: "get_finding",
      description:
        "One finding whole: its root cause, confidence, recommendation, and evidence (the events, metric windows, edges and SDK checks the detector read, and its reasoning in notes), with the evidence events' details.",
      input: z.strictObject({ id: z.string().min(1).max(100).describe("the finding's id, from list_findings") }),
      async run(input) {
        let finding: Finding;
        try {
          finding = getFinding(db, input.id);
        } catch (error) {
          if (error instanceof CoralError && error.code === "finding_not_found") throw notFound("finding", input.id);
          throw error;
        }
        const evidenceIds = finding.evidence.events.map((e) => e.id);
        const details = eventsByIds(db, evidenceIds.slice(-20)).map((e) => redactValue(compactEvent(e)));
        const base = redactValue({
          ...compactFinding(finding),
          recommendation: finding.recommendation,
          since: iso(finding.since),
          updatedAt: iso(finding.updatedAt),
          evidence: {
            notes: finding.evidence.notes,
            events: finding.evidence.events.map((e) => ({ ...e, time: iso(e.time) })),
            metrics: finding.evidence.metrics.map((m) => ({ ...m, since: iso(m.since), until: iso(m.until) })),
            edges: finding.evidence.edges,
            checks: finding.evidence.checks.map((c) => ({ ...c, since: iso(c.since) })),
          },
        });
        const { content, kept, cut } = fitList(details, (page, cut) => ({
          ...base,
          evidenceEvents: page,
          ...(cut ? { truncated: true, hint: "list_events has the other evidence events" } : {}),
        }));
        const citations: Citation[] = [
          { kind: "finding", id: finding.id },
          ...(finding.service ? [{ kind: "service" as const, id: finding.service }] : []),
          ...(finding.agent && !finding.service ? [{ kind: "agent" as const, id: finding.agent }] : []),
          ...kept.map((e) => ({ kind: "event" as const, id: String(e.id) })),
          ...finding.evidence.edges.map((e) => ({ kind: "edge" as const, id: `${e.from}->${e.to}` })),
          ...finding.evidence.metrics.map((m) => ({ kind: "metric" as const, id: `${finding.service ?? m.subject}:${m.metric}` })),
        ];
        return bounded(content, citations, cut);
      },
    }),

    tool({
      name: "get_summary",
      description:
        "The digest of a window (default the last 24 h): deploys, new services and dependencies, what broke and what fixed it, services that stayed quiet, open findings by severity, and SDK adoption.",
      input: z.strictObject({
        window: z.string().min(2).max(10).optional().describe("how far back: a span such as 1h, 24h, 7d (default 24h, at most 90d)"),
      }),
      async run(input) {
        const windowMs = input.window === undefined ? DAY_MS : parseDuration(input.window);
        if (windowMs === undefined || windowMs < 60_000 || windowMs > 90 * DAY_MS) {
          throw new CoralError(
            "invalid_tool_input",
            `window: "${input.window}" is not a span from 1m to 90d; give one such as 1h, 24h or 7d.`,
          );
        }
        const s = summary(db, now(), windowMs);
        const incidents = s.incidents.map((i) => redactValue({ ...compactFinding(i.finding), fixedBy: i.fixedBy }));
        const base = redactValue({
          since: iso(s.since),
          until: iso(s.until),
          open: s.open,
          deploys: s.changes.deploys.map((d) => ({ ...d, time: iso(d.time) })),
          newServices: s.changes.newServices.map((n) => ({ ...n, firstSeen: iso(n.firstSeen) })),
          newDependencies: s.changes.newDependencies.map((n) => ({ ...n, firstSeen: iso(n.firstSeen) })),
          quiet: s.quiet,
          sdk: { adoption: s.sdk.adoption, sdkServices: s.sdk.sdkServices, passiveOnly: s.sdk.passiveOnly.map((p) => p.service) },
        });
        const { content, kept, cut } = fitList(incidents, (page, cut) => ({
          ...base,
          incidents: page,
          ...(cut ? { truncated: true, hint: `${page.length} of ${incidents.length} incidents shown; list_findings filters them` } : {}),
        }));
        return bounded(
          content,
          [
            ...kept.map((f) => ({ kind: "finding" as const, id: f.id })),
            ...s.changes.deploys.map((d) => ({ kind: "event" as const, id: String(d.eventId) })),
          ],
          cut,
        );
      },
    }),

    tool({
      name: "list_agents",
      description:
        "The mesh's agents: each one's health (healthy, degraded, offline), when it was last heard from, how the hub reaches it, its version and host, and its plugins' states and last errors.",
      input: z.strictObject({}),
      async run() {
        const list = (await agentViews()).map((a) =>
          redactValue({
            name: a.name,
            status: a.status,
            lastSeen: iso(a.lastSeen),
            path: a.path,
            version: a.version,
            hostname: a.hostname,
            plugins: a.plugins.map((p) => ({ name: p.name, state: p.state, ...(p.lastError ? { lastError: p.lastError } : {}) })),
          }),
        );
        const { content, kept, cut } = fitList(list, (agents, cut) => ({
          total: list.length,
          agents,
          ...(cut ? { truncated: true, hint: `${agents.length} of ${list.length} agents shown` } : {}),
        }));
        return bounded(
          content,
          kept.map((a) => ({ kind: "agent", id: a.name })),
          cut,
        );
      },
    }),
  ];
}

/**
 * Looks the tool up, checks the input against its schema, and runs it. An unknown tool or
 * input it does not take is an `invalid_tool_input` whose message a model can act on.
 */
export async function callTool(tools: readonly AskTool[], name: string, rawInput: unknown, signal?: AbortSignal): Promise<ToolResult> {
  const found = tools.find((t) => t.name === name);
  if (!found) {
    throw new CoralError("invalid_tool_input", `There is no tool named ${name}; the tools are ${tools.map((t) => t.name).join(", ")}.`);
  }
  const parsed = found.input.safeParse(rawInput ?? {});
  if (!parsed.success) {
    throw new CoralError(
      "invalid_tool_input",
      `${name}: ${describeIssues(parsed.error)}. Call it again with input that matches its schema.`,
      {
        details: { issues: issueDetails(parsed.error) },
      },
    );
  }
  const result = await found.run(parsed.data, signal);
  return { ...result, citations: dedupe(result.citations) };
}

/** A tool's input as JSON Schema, for models and MCP clients. */
export function toolInputSchema(t: AskTool): Record<string, unknown> {
  const schema = z.toJSONSchema(t.input, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  const { $schema: _, ...rest } = schema;
  return rest;
}
