/**
 * What the detectors read off an instance, the same way everywhere: whether it is up, its
 * crashes, its health. Signals only; no detector looks at a service's name for meaning.
 */
import type { Evidence, MetricWindow } from "@coral-mesh/sdk-proto";
import type { AnalysisState, InstanceState, Sample, ServiceState, SignalEvent } from "../model.js";
import { formatDuration } from "../stats.js";

/** Evidence holds at most this many events (the latest). */
const EVIDENCE_EVENTS = 20;

/** A crash: the service lost every process and was started again soon after (a supervisor, a restart policy). */
export interface Crash {
  time: number;
  events: SignalEvent[];
}

/**
 * The instance's crashes since `since`: a restart that none of its processes survived, or an
 * exit that left none running followed within `restartGapMs` by a start. A worker of a pool
 * replaced while the pool runs on is no crash; nor is a job that ran to completion and is
 * started again on its schedule, later than `restartGapMs`.
 */
export function crashes(instance: InstanceState, since: number, restartGapMs: number): Crash[] {
  const found: Crash[] = [];
  const events = instance.events;
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as SignalEvent;
    if (e.time < since) continue;
    if (e.kind === "process.restarted" && (e.attributes.survivors ?? "0") === "0") {
      // The exit it replaced, for its status where a collector knew it.
      const exit = events.slice(Math.max(0, i - 8), i).find((p) => p.kind === "process.exited" && p.attributes.pid === e.attributes.oldPid);
      found.push({ time: e.time, events: exit ? [exit, e] : [e] });
    } else if (e.kind === "process.exited" && e.attributes.remaining === "0") {
      const start = events.slice(i + 1).find((n) => n.kind === "process.started" && n.time - e.time <= restartGapMs);
      if (start) found.push({ time: e.time, events: [e, start] });
    }
  }
  return found;
}

/** Exits that left the service with no process, since `since` (whatever followed). */
export function outages(instance: InstanceState, since: number): SignalEvent[] {
  return instance.events.filter((e) => e.time >= since && e.kind === "process.exited" && e.attributes.remaining === "0");
}

/**
 * It runs to completion and is started again later: a job (cron, a batch), not a daemon. Its
 * resource use while it runs is its work, and its exits are no outage.
 */
export function jobLike(instance: InstanceState, restartGapMs: number): boolean {
  const exits = outages(instance, Number.NEGATIVE_INFINITY);
  if (exits.length === 0) return false;
  return exits.some(
    (exit) => !instance.events.some((n) => n.kind === "process.started" && n.time > exit.time && n.time - exit.time <= restartGapMs),
  );
}

/** Reporting: its metrics or observations arrived within three collect intervals. */
export function reporting(instance: InstanceState, state: AnalysisState, now: number): boolean {
  return instance.lastSeen >= now - 3 * state.collectIntervalMs(instance.agent);
}

/** The agent is there to tell: heartbeats arrive (so a silent instance is really gone). */
export function agentAlive(state: AnalysisState, agent: string): boolean {
  const health = state.agents.get(agent)?.health;
  return health !== "offline" && health !== "unhealthy";
}

export const sdkInstance = (instance: InstanceState): boolean => instance.source === "sdk";
export const sdkService = (service: ServiceState): boolean => [...service.instances.values()].some(sdkInstance);

/** `api on host-a`, or just `api` when it runs on one agent and that is said elsewhere. */
export const where = (instance: InstanceState): string => `${instance.name} on ${instance.agent}`;

export const ago = (now: number, time: number): string => `${formatDuration(Math.max(0, now - time))} ago`;

export const clock = (time: number): string => new Date(time).toISOString().slice(11, 19);

export function evidence(parts: {
  events?: readonly SignalEvent[];
  metrics?: readonly MetricWindow[];
  edges?: ReadonlyArray<{ from: string; to: string }>;
  checks?: ReadonlyArray<{ name: string; passing: boolean; since: number }>;
  notes?: readonly string[];
}): Evidence {
  const events = [...new Map((parts.events ?? []).map((e) => [e.id, e])).values()]
    .sort((a, b) => a.time - b.time || a.id - b.id)
    .slice(-EVIDENCE_EVENTS)
    .map((e) => ({ id: e.id, kind: e.kind, time: e.time, agent: e.agent }));
  return {
    events,
    metrics: [...(parts.metrics ?? [])].slice(0, 8),
    edges: [...(parts.edges ?? [])].slice(0, 20),
    checks: [...(parts.checks ?? [])].slice(0, 20),
    notes: [...(parts.notes ?? [])].slice(0, 12),
  };
}

/** A metric window of an instance for evidence. */
export function window(instance: InstanceState, metric: string, samples: readonly Sample[], summary: Record<string, number>): MetricWindow {
  const brace = metric.indexOf("{");
  const name = brace < 0 ? metric : metric.slice(0, brace);
  const labels = brace < 0 ? undefined : (JSON.parse(metric.slice(brace)) as Record<string, string>);
  return {
    agent: instance.agent,
    subject: instance.key,
    metric: name,
    ...(labels ? { labels } : {}),
    since: Math.round(samples[0]?.time ?? 0),
    until: Math.round(samples[samples.length - 1]?.time ?? 0),
    summary: Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, Math.round(v * 1000) / 1000])),
  };
}

/** The instance's latest restart or start (memory and CPU start afresh there). */
export function lastStart(instance: InstanceState): number {
  let at = Number.NEGATIVE_INFINITY;
  for (const e of instance.events) if ((e.kind === "process.restarted" || e.kind === "process.started") && e.time > at) at = e.time;
  return at;
}

/** Confidence from the strength of the signal, raised when the SDK speaks for the service. */
export function confidence(base: number, sdk: boolean, bonus = 0): number {
  return Math.min(0.97, base + bonus + (sdk ? 0.3 : 0));
}
