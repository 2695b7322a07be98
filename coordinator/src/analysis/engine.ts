/**
 * The findings engine: state kept from the ingest bus (state.ts), the detectors run over what
 * moved, their conclusions correlated (a dependency's fault is its dependents' root) and turned
 * into findings. A finding opens once, is updated while its conclusion holds, and resolves
 * when it has not held for a while; the same fault never opens a new finding every interval.
 *
 * Pure: no store, no clock, no threads. The worker (worker.ts) feeds it and calls `evaluate`
 * with the time; the host (host.ts) writes what it returns.
 */
import { randomBytes } from "node:crypto";
import type { AnalysisConfig, Finding } from "@coral-mesh/sdk-proto";
import { detectors as builtIn, correlate } from "./detectors/index.js";
import {
  type Conclusion,
  conclusionKey,
  type Detector,
  type DetectorContext,
  type InstanceDetector,
  type InstanceState,
  type ServiceState,
  type Thresholds,
} from "./model.js";
import { type BaselineSource, State } from "./state.js";

/** Every service is looked at again as a whole at least this often, changed or not (a dead one reports nothing). */
export const FULL_PASS_MS = 5_000;
/** Every instance is looked at again at least this often, though it reported nothing (its windows move on). */
export const IDLE_LOOK_MS = 30_000;
/**
 * What a pass may spend on the metric detectors, in ms: at a pass a second, at most this share of
 * a core in thousandths. A small mesh never reaches it (every instance that moved is looked at in
 * the same pass); at a thousand agents × 40 services each instance's windows are looked at every
 * half minute or so instead of every report.
 */
export const METRIC_BUDGET_MS = 40;
/** How often what is past its age is dropped from the state. */
const PRUNE_EVERY_MS = 10_000;
/** A finding whose conclusion stopped holding resolves after this long, or three collect intervals if longer. */
export const RESOLVE_AFTER_MS = 30_000;
/** An open finding is rewritten at most this often when only its numbers moved. */
export const UPDATE_EVERY_MS = 30_000;

export interface FindingChange {
  change: "opened" | "updated" | "resolved";
  /** What makes it the same fault (the findings table's `identity`). */
  identity: string;
  finding: Finding;
}

export interface EngineOptions {
  detectors?: readonly Detector[];
  config?: AnalysisConfig;
  baselines?: BaselineSource;
  newId?: () => string;
  /** Time a pass may spend on the metric detectors (METRIC_BUDGET_MS). */
  metricBudgetMs?: number;
}

interface Open {
  finding: Finding;
  identity: string;
  /** When its conclusion last held. */
  heldAt: number;
  /** Its agent's collect interval when last seen (resolution waits three of them). */
  intervalMs: number;
}

/** `f_` + time + randomness: sorts by when it opened, unique without coordination. */
export const newFindingId = (): string => `f_${Date.now().toString(36)}${randomBytes(5).toString("hex")}`;

export class Engine {
  readonly state: State;
  private readonly detectors: readonly Detector[];
  private readonly config: AnalysisConfig;
  private readonly newId: () => string;
  private readonly open = new Map<string, Open>();
  /**
   * The latest conclusions of each instance (`i:AGENT\0KEY` from the event detectors, `m:…` from
   * the metric detectors), service (`s:NAME`) and agent (`a:NAME`); only those that concluded
   * something, so that a pass's sweep and correlation cost what is wrong, not the fleet's size.
   */
  private readonly concluded = new Map<string, Conclusion[]>();
  /** When each service (`s:NAME`) was last looked at. */
  private readonly lastLooked = new Map<string, number>();
  /**
   * When each instance was last looked at, oldest first: a look moves it to the end, so the idle
   * look takes from the front what is due and stops at the first that is not, instead of
   * walking the whole fleet each pass.
   */
  private readonly instanceLooks = new Map<string, number>();
  private prunedAt = Number.NEGATIVE_INFINITY;
  private readonly shared = new Map<Detector, Thresholds>();
  private idleScannedAt = Number.NEGATIVE_INFINITY;
  /** Instances waiting for the metric detectors, in the order they moved (a Set keeps it). */
  private readonly metricQueue = new Set<string>();
  private readonly metricBudgetMs: number;

  constructor(options: EngineOptions = {}) {
    this.state = new State(options.baselines);
    this.detectors = options.detectors ?? builtIn;
    this.config = options.config ?? {};
    this.newId = options.newId ?? newFindingId;
    this.metricBudgetMs = options.metricBudgetMs ?? METRIC_BUDGET_MS;
  }

  /** Open findings from the store, so a restart updates them instead of opening them again. */
  restore(findings: ReadonlyArray<{ identity: string; finding: Finding }>, now: number): void {
    for (const { identity, finding } of findings) {
      if (finding.state !== "open") continue;
      this.open.set(conclusionKey({ kind: finding.kind, identity }), { finding, identity, heldAt: now, intervalMs: 0 });
    }
  }

  openFindings(): Finding[] {
    return [...this.open.values()].map((o) => o.finding);
  }

  /** The thresholds of `detector` for `service`: its defaults, the config's for every service, the config's for this one. */
  thresholds(detector: Detector, service?: string | null): Thresholds {
    // Most services have no overrides of their own: their thresholds are the detector's, made once.
    if (!service || !this.config.services?.[service]?.[detector.kind]) {
      let shared = this.shared.get(detector);
      if (!shared) {
        shared = { ...detector.defaults, ...this.config.detectors?.[detector.kind] };
        this.shared.set(detector, shared);
      }
      return shared;
    }
    return {
      ...detector.defaults,
      ...this.config.detectors?.[detector.kind],
      ...(service ? this.config.services?.[service]?.[detector.kind] : undefined),
    };
  }

  /**
   * Runs the detectors over what moved — each instance that reported since the last pass, and
   * every instance at least every IDLE_LOOK_MS; each service as a whole when one of its
   * instances or callers moved, and at least every FULL_PASS_MS — and returns what changed.
   * What is not looked at again keeps its conclusions.
   */
  evaluate(now: number): FindingChange[] {
    const { state } = this;
    if (now - this.prunedAt >= PRUNE_EVERY_MS) {
      state.prune(now);
      this.prunedAt = now;
    }
    const dirty = state.takeDirty();
    const contexts = new Map(
      this.detectors.map((d) => [
        d,
        { now, state, thresholds: (service?: string | null) => this.thresholds(d, service) } as DetectorContext,
      ]),
    );

    // Instances, one at a time: most of the work, and most instances did not move. Detectors of
    // events (crashes, deploys, kills, health) look at every instance that moved, at once; those
    // of metric windows (saturation, leaks, spikes), which cost more, take the instances in the
    // order they moved within a time budget a pass, so that a large fleet costs the engine a
    // bounded share of a core and waits its turn instead (docs/findings.md).
    const light = this.detectors.filter((d) => d.scope === "instance" && d.reads !== "metrics");
    const heavy = this.detectors.filter((d) => d.scope === "instance" && d.reads === "metrics");
    const idleScan = now - this.idleScannedAt >= FULL_PASS_MS;
    if (idleScan) this.idleScannedAt = now;
    const run = (detectors: readonly Detector[], service: ServiceState, instance: InstanceState) => {
      const found: Conclusion[] = [];
      for (const detector of detectors) {
        if (this.thresholds(detector, instance.name).enabled === false) continue;
        found.push(...(detector as InstanceDetector).detect(contexts.get(detector) as DetectorContext, service, [instance]));
      }
      return found;
    };
    const look = dirty.instances;
    if (idleScan) {
      for (const [id, at] of this.instanceLooks) {
        if (at > now - IDLE_LOOK_MS) break;
        look.add(id);
      }
    }
    for (const id of look) {
      const instance = state.instanceById(id);
      const service = instance && state.services.get(instance.name);
      this.instanceLooks.delete(id);
      if (!instance || !service) continue;
      this.instanceLooks.set(id, now);
      this.conclude(`i:${id}`, run(light, service, instance));
      this.metricQueue.add(id);
    }
    const until = performance.now() + this.metricBudgetMs;
    for (const id of this.metricQueue) {
      if (performance.now() > until) break;
      this.metricQueue.delete(id);
      const instance = state.instanceById(id);
      const service = instance && state.services.get(instance.name);
      if (!instance || !service) continue;
      this.conclude(`m:${id}`, run(heavy, service, instance));
    }

    // Services as a whole: a caller's trouble may be its dependency's, so those are looked at too.
    const lookServices = new Set<string>();
    for (const name of dirty.services) {
      lookServices.add(name);
      for (const to of state.dependencies.get(name) ?? []) lookServices.add(to);
    }
    for (const name of state.services.keys()) if ((this.lastLooked.get(`s:${name}`) ?? 0) <= now - FULL_PASS_MS) lookServices.add(name);
    for (const name of lookServices) {
      const service = state.services.get(name);
      if (!service) continue;
      this.lastLooked.set(`s:${name}`, now);
      const found: Conclusion[] = [];
      for (const detector of this.detectors) {
        if (detector.scope !== "service" || this.thresholds(detector, name).enabled === false) continue;
        found.push(...detector.detect(contexts.get(detector) as DetectorContext, service));
      }
      this.conclude(`s:${name}`, found);
    }

    // Agents are few beside instances, and offline ones report nothing: all of them, every time.
    for (const agent of state.agents.values()) {
      const found: Conclusion[] = [];
      for (const detector of this.detectors) {
        if (detector.scope !== "agent" || this.thresholds(detector).enabled === false) continue;
        found.push(...detector.detect(contexts.get(detector) as DetectorContext, agent));
      }
      this.conclude(`a:${agent.name}`, found);
    }

    // What is gone from the state takes its conclusions with it.
    for (const key of this.concluded.keys()) {
      const rest = key.slice(2);
      const gone =
        key.startsWith("i:") || key.startsWith("m:")
          ? !state.instanceById(rest)
          : key.startsWith("s:")
            ? !state.services.has(rest)
            : !state.agents.has(rest);
      if (gone) this.concluded.delete(key);
    }
    for (const key of this.lastLooked.keys()) if (!state.services.has(key.slice(2))) this.lastLooked.delete(key);

    return this.reconcile(correlate([...this.concluded.values()].flat(), state), now);
  }

  private conclude(key: string, found: Conclusion[]): void {
    if (found.length > 0) this.concluded.set(key, found);
    else this.concluded.delete(key);
  }

  /** Conclusions into findings: open the new, update the moved, resolve the cleared. */
  private reconcile(conclusions: readonly Conclusion[], now: number): FindingChange[] {
    const changes: FindingChange[] = [];
    const held = new Set<string>();
    const byKey = new Map(conclusions.map((c) => [conclusionKey(c), c]));
    // Roots first, so that a dependent's finding can name its root's id.
    const ordered = [...conclusions].sort((a, b) => Number(Boolean(a.rootOf)) - Number(Boolean(b.rootOf)));
    for (const c of ordered) {
      const key = conclusionKey(c);
      if (held.has(key)) continue;
      held.add(key);
      const rootFinding = c.rootOf && byKey.has(c.rootOf) ? this.open.get(c.rootOf)?.finding : undefined;
      const rootCause = {
        ...(c.rootCause ?? { service: c.service, agent: c.agent, kind: c.kind }),
        ...(rootFinding ? { findingId: rootFinding.id } : {}),
      };
      const intervalMs = c.agent ? this.state.collectIntervalMs(c.agent) : 0;
      const existing = this.open.get(key);
      if (!existing) {
        const finding: Finding = {
          id: this.newId(),
          kind: c.kind,
          severity: c.severity,
          state: "open",
          service: c.service,
          agent: c.agent,
          rootCause,
          summary: c.summary,
          confidence: round(c.confidence),
          evidence: c.evidence,
          recommendation: c.recommendation,
          openedAt: now,
          updatedAt: now,
          resolvedAt: null,
          since: Math.round(Math.min(c.since, now)),
        };
        this.open.set(key, { finding, identity: c.identity, heldAt: now, intervalMs });
        changes.push({ change: "opened", identity: c.identity, finding });
        continue;
      }
      existing.heldAt = now;
      existing.intervalMs = intervalMs;
      const before = existing.finding;
      const turned =
        before.severity !== c.severity ||
        JSON.stringify(before.rootCause) !== JSON.stringify(rootCause) ||
        before.recommendation.action !== c.recommendation.action;
      const moved = before.summary !== c.summary || Math.abs(before.confidence - c.confidence) >= 0.05;
      if (!turned && !(moved && now - before.updatedAt >= UPDATE_EVERY_MS)) continue;
      const finding: Finding = {
        ...before,
        severity: c.severity,
        rootCause,
        summary: c.summary,
        confidence: round(c.confidence),
        evidence: c.evidence,
        recommendation: c.recommendation,
        updatedAt: now,
        since: Math.round(Math.min(before.since, c.since)),
      };
      existing.finding = finding;
      changes.push({ change: "updated", identity: existing.identity, finding });
    }
    for (const [key, open] of this.open) {
      if (held.has(key)) continue;
      if (now - open.heldAt < Math.max(RESOLVE_AFTER_MS, 3 * open.intervalMs)) continue;
      this.open.delete(key);
      const finding: Finding = { ...open.finding, state: "resolved", resolvedAt: now, updatedAt: now };
      changes.push({ change: "resolved", identity: open.identity, finding });
    }
    return changes;
  }
}

const round = (x: number) => Math.round(Math.min(1, Math.max(0, x)) * 100) / 100;
