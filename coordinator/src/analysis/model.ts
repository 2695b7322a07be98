/**
 * What the findings engine knows, and the contract between the two halves of the analysis:
 * the engine (engine.ts) keeps this state up to date from the ingest bus, incrementally, and
 * every detector (detectors/) reads it and says what it concludes. Detectors are pure: the
 * same state and `now` give the same conclusions; they never read the store, the clock or a
 * service's name for meaning (a detector reasons about signals, never about names).
 *
 * All times are Unix milliseconds. Event times are the observer's clock corrected by the
 * agent's estimated offset, so they compare with `now` (the coordinator's clock).
 */
import type { Evidence, FindingKind, Recommendation, RootCause, Severity } from "@coral-mesh/sdk-proto";

export interface Sample {
  time: number;
  value: number;
}

/**
 * A metric's recent samples, oldest first, bounded by age (`SERIES_KEEP_MS`) and count: when
 * full, the oldest half is merged pairwise, so resolution falls with age and memory does not
 * grow. Older history is in `AnalysisState.baseline` (from the store's hourly rollups).
 */
export interface Series {
  /** The samples at or after `since` (all kept, without it), oldest first. */
  points(since?: number): Sample[];
  /** The latest sample, if any. */
  readonly last: Sample | undefined;
  readonly size: number;
}

/** How long the engine keeps raw samples and events in memory per series or service. */
export const SERIES_KEEP_MS = 2 * 3_600_000;
export const EVENTS_KEEP_MS = 6 * 3_600_000;

/** An event as the analysis sees it: the store's event, on the coordinator's clock. */
export interface SignalEvent {
  /** The store's event id (evidence points at it). */
  id: number;
  kind: string;
  time: number;
  agent: string | null;
  /** The subject's id: a service key on its agent, a pid, "host", an agent name. */
  subject: string;
  attributes: Readonly<Record<string, string>>;
  /** The plugin that observed it (`passive`, `sdk`, `ebpf`), or `coordinator`. */
  source: string | null;
}

/** A check an SDK service reports (`service.check.passing` / `service.check_changed`). */
export interface CheckState {
  name: string;
  passing: boolean;
  /** When it took its current value. */
  since: number;
  /** Times it changed value, within EVENTS_KEEP_MS, oldest first (flapping shows here). */
  changes: readonly number[];
}

/** One instance of a service: the service as one agent sees it (agent + key). */
export interface InstanceState {
  agent: string;
  /** Its identity on the agent (`unit:…`, `script:…`, `exe:…`, or the SDK's). */
  key: string;
  name: string;
  /** `sdk` once the SDK has spoken for it; its version and health are then the SDK's word. */
  source: "passive" | "sdk";
  version: string | null;
  executable: string | null;
  /** `serving`, `not_serving`, `unreachable`, or null (passive: unknown). */
  health: string | null;
  /** When `health` took its current value. */
  healthSince: number | null;
  listening: readonly string[];
  firstSeen: number;
  lastSeen: number;
  /**
   * Metrics about this instance by name, labels folded in as `name{"k":"v"}` when there are any
   * (`service.cpu.cores`, `service.memory.rss_bytes`, `service.memory.limit_bytes`,
   * and the rest the state keeps: state.ts ANALYSED_METRICS).
   */
  metrics: ReadonlyMap<string, Series>;
  checks: ReadonlyMap<string, CheckState>;
  /** Its events (process.*, service.*, port.*), oldest first, within EVENTS_KEEP_MS. */
  events: readonly SignalEvent[];
}

/** A deploy: a new executable or script (passive) or a new version (SDK). */
export interface Deploy {
  eventId: number;
  time: number;
  agent: string;
  key: string;
  from: string | null;
  to: string | null;
  source: string | null;
}

/** A service across the mesh: every instance with its name. */
export interface ServiceState {
  name: string;
  instances: ReadonlyMap<string, InstanceState>;
  /** Deploys of any of its instances, oldest first, within EVENTS_KEEP_MS. */
  deploys: readonly Deploy[];
  /**
   * Versions seen and when each was first and last seen running (across restarts), so that a
   * deploy's audit can compare the new version with how the previous one behaved.
   */
  versions: ReadonlyMap<string, { firstSeen: number; lastSeen: number }>;
}

/** An agent, as the coordinator sees it, and the host it runs on. */
export interface AgentState {
  name: string;
  /** `healthy`, `degraded`, `unhealthy`, `offline` (the coordinator's evaluation). */
  health: string | null;
  healthSince: number | null;
  lastHeartbeat: number | null;
  /** Plugins by name: `running`, `failed`, … with the error the agent reported. */
  plugins: ReadonlyMap<string, { state: string; since: number; error?: string }>;
  /** Host metrics by name with labels folded in (`host.cpu.utilization`, `host.disk.used_bytes{mount=/}`, …). */
  host: ReadonlyMap<string, Series>;
  /** The coordinator's own events about it (agent.*, plugin.*), oldest first. */
  events: readonly SignalEvent[];
}

/** A learned baseline: robust statistics of a metric over its history. */
export interface Baseline {
  median: number;
  /** Median absolute deviation. */
  mad: number;
  /** How many points it was learned from (hourly means, or recent samples when history is short). */
  points: number;
  /** `hour-of-week` once a week of rollups exists, else `all`. */
  by: "hour-of-week" | "all";
}

export interface AnalysisState {
  readonly services: ReadonlyMap<string, ServiceState>;
  readonly agents: ReadonlyMap<string, AgentState>;
  /** The resolved dependency graph, service to services it calls (externals left out). */
  readonly dependencies: ReadonlyMap<string, ReadonlySet<string>>;
  /** The reverse: service to the services that call it. */
  readonly dependents: ReadonlyMap<string, ReadonlySet<string>>;
  /** The instances an agent reports (every service's), found by walking them: for rare questions. */
  instancesOn(agent: string): InstanceState[];
  /** The agent's collect interval as observed (median spacing of its reports), or the default. */
  collectIntervalMs(agent: string): number;
  /** The learned baseline of an instance's metric at `at`, if there is enough history. */
  baseline(agent: string, key: string, metric: string, at: number): Baseline | undefined;
}

/** One detector's thresholds after the config's overrides (analysis.detectors / analysis.services). */
export type Thresholds = Readonly<Record<string, number | boolean>>;

export interface DetectorContext {
  now: number;
  state: AnalysisState;
  /** Defaults, over them `analysis.detectors.KIND`, over that `analysis.services.NAME.KIND`. */
  thresholds(service?: string | null): Thresholds;
}

/** What a detector concludes holds now. The engine turns conclusions into findings. */
export interface Conclusion {
  kind: FindingKind;
  /**
   * What makes it the same fault from one evaluation to the next, within its kind: e.g. the
   * service (and agent, for a per-instance fault), or the agent and mount for disk space.
   */
  identity: string;
  severity: Severity;
  service: string | null;
  agent: string | null;
  summary: string;
  confidence: number;
  evidence: Evidence;
  recommendation: Recommendation;
  /** When its signals first showed. */
  since: number;
  /** Defaults to itself (service, agent, kind); correlation may point it elsewhere. */
  rootCause?: RootCause;
  /** Set by correlation: the key (conclusionKey) of the conclusion that is its root. */
  rootOf?: string;
}

/**
 * A detector looks at instances of a service (those that moved, and each at least every
 * half minute), at a service as a whole, or at one agent and its host.
 */
export type Detector = InstanceDetector | ServiceDetector | AgentDetector;

interface DetectorBase {
  kind: FindingKind;
  /** The thresholds it reads, with their defaults; docs/findings.md documents each. */
  defaults: Thresholds;
  /**
   * `metrics`: it reads metric windows, the costly kind, which the engine runs within a time
   * budget; otherwise (events, health, checks) it runs whenever an instance moves.
   */
  reads?: "events" | "metrics";
}

export interface InstanceDetector extends DetectorBase {
  scope: "instance";
  /** Concludes about each of `instances` (of `service`) on its own. */
  detect(context: DetectorContext, service: ServiceState, instances: Iterable<InstanceState>): Conclusion[];
}

export interface ServiceDetector extends DetectorBase {
  scope: "service";
  detect(context: DetectorContext, service: ServiceState): Conclusion[];
}

export interface AgentDetector extends DetectorBase {
  scope: "agent";
  detect(context: DetectorContext, agent: AgentState): Conclusion[];
}

/** What makes a conclusion the same finding from one evaluation to the next. */
export const conclusionKey = (c: Pick<Conclusion, "kind" | "identity">): string => `${c.kind}\u0000${c.identity}`;

/** Empty evidence, to fill in. */
export const noEvidence = (): Evidence => ({ events: [], metrics: [], edges: [], checks: [], notes: [] });
