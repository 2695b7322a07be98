/**
 * Runs one scenario on the lab: its services, the warm-up, the fault (or the control's window),
 * polling `GET /v1/findings` every 500 ms, then what the store showed, then its services stopped.
 */
import { statfsSync } from "node:fs";
import { join } from "node:path";
import { askContextOf } from "@coral-mesh/coordinator/ask-testing";
import { eventsResponseSchema, type Finding, findingSchema, metricsResponseSchema } from "@coral-mesh/sdk-proto";
import Database from "better-sqlite3";
import { z } from "zod";
import { ApiError } from "./api.js";
import {
  askContextHolds,
  askQuestion,
  brief,
  controlFalsePositives,
  controlHostFindings,
  isExpected,
  rank,
  type ScenarioResult,
  topOf,
} from "./judge.js";
import { type ScenarioLab, sleep } from "./lab.js";
import { DEFAULT_TIMEOUT_MS, isControl, type Scenario, type ScenarioContext, type Signal } from "./scenario.js";

const POLL_MS = 500;
/** How long after a fault was found its declared signals may take to show in the store. */
const SETTLE_MS = 20_000;
/** A control's findings are watched this much past its window: what its last behaviour caused. */
const CONTROL_GRACE_MS = 10_000;

/**
 * What judging reads of a finding: everything but its evidence and recommendation, which are
 * checked against the contract separately, so that a finding whose evidence breaks the contract
 * is still judged, and the break is reported (`contractIssues`), not taken for a lab failure.
 */
const judgedSchema = findingSchema.extend({ evidence: z.unknown(), recommendation: z.unknown() });

/** Contract breaks seen in this run, one line per finding id. */
export const contractIssues = new Map<string, string>();

function readFinding(raw: unknown, log: (line: string) => void): Finding | undefined {
  const full = findingSchema.safeParse(raw);
  if (full.success) return full.data;
  const judged = judgedSchema.safeParse(raw);
  const id = String((raw as { id?: unknown })?.id ?? "?");
  if (!contractIssues.has(id)) {
    const issue = full.error.issues[0];
    const line = `finding ${id} breaks the Finding contract at ${issue?.path.join(".")}: ${issue?.message}`;
    contractIssues.set(id, line);
    log(line);
  }
  return judged.success ? (judged.data as Finding) : undefined;
}

/** Every finding the coordinator has (open and resolved), in its order; ApiError when it cannot answer. */
async function allFindings(lab: ScenarioLab, log: (line: string) => void): Promise<Finding[]> {
  const { findings } = await lab.api.get("/v1/findings?all=true&limit=1000", z.object({ findings: z.array(z.unknown()) }));
  return findings.flatMap((raw) => readFinding(raw, log) ?? []);
}

/** The coordinator has no findings route. */
const noRoute = (error: unknown) => error instanceof ApiError && error.status === 404;

/**
 * The findings table as the engine wrote it, ranked by the documented rule: for a coordinator
 * whose engine writes findings but whose API does not serve them yet. Undefined when there is
 * no such table (no engine at all).
 */
export function storeFindings(lab: ScenarioLab, log: (line: string) => void): Finding[] | undefined {
  const sqlite = new Database(join(lab.coordinator.options.dataDir, "coral.db"), { readonly: true });
  try {
    const table = sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'findings'").get();
    if (!table) return undefined;
    const rows = sqlite.prepare<[], Record<string, unknown>>("SELECT * FROM findings").all();
    const findings = rows.flatMap(
      (r) =>
        readFinding(
          {
            id: r.id,
            kind: r.kind,
            severity: r.severity,
            state: r.state,
            service: r.service,
            agent: r.agent_name,
            rootCause: JSON.parse(String(r.root_cause)),
            summary: r.summary,
            confidence: r.confidence,
            evidence: JSON.parse(String(r.evidence)),
            recommendation: JSON.parse(String(r.recommendation)),
            openedAt: r.opened_at,
            updatedAt: r.updated_at,
            resolvedAt: r.resolved_at,
            since: r.since,
          },
          log,
        ) ?? [],
    );
    return rank(findings);
  } finally {
    sqlite.close();
  }
}

/** A scenario's result before anything is known of it (or when it could not run: `error`). */
export function blankResult(scenario: Scenario, startedAt: number, error: string | null): ScenarioResult {
  return {
    name: scenario.name,
    via: scenario.via,
    control: isControl(scenario),
    expected: isControl(scenario) ? null : { ...scenario.expect },
    top: null,
    right: false,
    secondsToFinding: null,
    openedSecondsAfterFault: null,
    falsePositives: [],
    hostFindings: [],
    findings: [],
    signals: [],
    askContext: null,
    error,
    startedAt,
    faultAt: null,
    endedAt: startedAt,
  };
}

export async function runScenario(
  lab: ScenarioLab,
  scenario: Scenario,
  /** `retired`: services of the scenarios before; this one's are added once it ends. */
  /** `source`: where findings are read, shared by the run (`store` once the API said it has no route). */
  options: { log: (line: string) => void; retired: Set<string>; source: { from: "api" | "store" } },
): Promise<ScenarioResult> {
  const log = (line: string) => options.log(`  ${scenario.name}: ${line}`);
  const ctx: ScenarioContext = { lab, log, services: new Map() };
  const startedAt = Date.now();
  const seen = new Map<string, Finding>();
  const result = blankResult(scenario, startedAt, null);

  // Findings about services of earlier scenarios (stopped, or still resolving) are not this one's.
  const ours = (f: Finding) => !options.retired.has(f.service ?? "") && !options.retired.has(f.rootCause.service ?? "");
  let engine = true;
  const poll = async (): Promise<Finding[]> => {
    if (!engine) return [];
    let findings: Finding[];
    if (options.source.from === "api") {
      try {
        findings = await allFindings(lab, log);
      } catch (error) {
        if (!noRoute(error)) throw error;
        options.source.from = "store";
        log("GET /v1/findings answers 404: reading the engine's findings table instead, ranked by the documented rule");
        return poll();
      }
    } else {
      const stored = storeFindings(lab, log);
      if (!stored) {
        engine = false;
        result.error = "the coordinator has no findings engine (no findings route, no findings table)";
        log("the coordinator has no findings engine: checking the store's signals only");
        return [];
      }
      findings = stored;
    }
    findings = findings.filter(ours);
    for (const f of findings) if (f.openedAt >= startedAt) seen.set(f.id, f);
    return findings;
  };

  try {
    log(`started: ${scenario.description}`);
    await scenario.setup(ctx);
    await sleep(1_000);
    for (const service of ctx.services.values()) {
      if (service.child.exitCode !== null || service.child.signalCode !== null)
        throw new Error(`${service.name} exited as it started (${service.child.exitCode ?? service.child.signalCode})`);
    }
    log(`warm-up ${Math.round(scenario.warmupMs / 1000)} s`);
    const warmupEnd = Date.now() + scenario.warmupMs;
    while (Date.now() < warmupEnd) {
      await poll();
      await sleep(Math.min(2_000, Math.max(0, warmupEnd - Date.now())));
    }
    if (isControl(scenario)) {
      const windowStart = Date.now();
      if (scenario.act) await scenario.act(ctx);
      log(`normal behaviour for ${Math.round(scenario.windowMs / 1000)} s`);
      const end = windowStart + scenario.windowMs + CONTROL_GRACE_MS;
      let reported = 0;
      while (Date.now() < end) {
        await poll();
        const against = controlFalsePositives([...seen.values()], { from: startedAt, to: end }, scenario.watches);
        for (const f of against.slice(reported)) log(`finding opened: ${f.severity} ${f.kind} ${f.service ?? "(host)"}: ${f.summary}`);
        reported = against.length;
        await sleep(POLL_MS);
      }
      result.falsePositives = controlFalsePositives([...seen.values()], { from: startedAt, to: end }, scenario.watches).map(brief);
      result.hostFindings = controlHostFindings([...seen.values()], { from: startedAt, to: end }, scenario.watches.agents).map(brief);
      for (const f of result.hostFindings) log(`host finding (not counted): ${f.severity} ${f.kind} @${f.agent}: ${f.summary}`);
      result.right = result.falsePositives.length === 0 && engine;
      log(
        result.falsePositives.length === 0
          ? "no finding of severity warning or above"
          : `${result.falsePositives.length} finding(s) against it`,
      );
    } else {
      result.faultAt = Date.now();
      await scenario.fault(ctx);
      log("fault injected");
      const deadline = result.faultAt + (scenario.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      let lastTop: string | undefined;
      while (Date.now() < deadline) {
        const findings = await poll();
        if (!engine) {
          if (await signalsSeen(lab, scenario, startedAt)) break;
          await sleep(2_000);
          continue;
        }
        const top = topOf(findings, startedAt);
        if (top) {
          result.top = brief(top);
          const text = `${top.rootCause.service ?? "(host)"} ${top.rootCause.kind} (${top.severity}, confidence ${top.confidence.toFixed(2)})`;
          if (text !== lastTop) log(`top-1 now ${text}`);
          lastTop = text;
        }
        if (top && isExpected(scenario.expect, top)) {
          result.right = true;
          result.secondsToFinding = (Date.now() - result.faultAt) / 1000;
          result.openedSecondsAfterFault = (top.openedAt - result.faultAt) / 1000;
          log(`found after ${result.secondsToFinding.toFixed(1)} s`);
          break;
        }
        await sleep(POLL_MS);
      }
      if (engine && !result.right) log(`not found within ${Math.round((deadline - result.faultAt) / 1000)} s`);
      const expected = [...seen.values()].find((f) => isExpected(scenario.expect, f));
      if (engine && expected) {
        try {
          const context = await askContextOf(join(lab.coordinator.options.dataDir, "coral.db"), askQuestion(scenario.expect));
          result.askContext = askContextHolds(context, expected);
        } catch (error) {
          result.askContext = { holds: false, detail: `could not build it: ${(error as Error).message}` };
        }
        log(`ask context ${result.askContext.holds ? "✓" : "✗"} ${result.askContext.detail}`);
      }
      // Found quickly, the fault may not have shown all it does yet (the callers' exits): its signals get a little longer.
      const settle = Date.now() + SETTLE_MS;
      while (Date.now() < settle && !(await signalsSeen(lab, scenario, startedAt))) await sleep(2_000);
    }
    result.signals = await checkSignals(lab, scenario, startedAt);
    for (const s of result.signals) log(`store ${s.seen ? "✓" : "✗"} ${s.signal}: ${s.detail}`);
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
    log(`error: ${result.error}`);
  } finally {
    await lab.stopAll();
    try {
      await scenario.teardown?.(ctx);
    } catch (error) {
      log(`teardown failed: ${(error as Error).message}`);
    }
  }
  result.findings = [...seen.values()].map(brief);
  result.endedAt = Date.now();
  for (const name of servicesOf(scenario, ctx)) options.retired.add(name);
  return result;
}

/** The services a scenario ran: those it started, its jobs and workers (named in its signals), those a control watches. */
function servicesOf(scenario: Scenario, ctx: ScenarioContext): string[] {
  const names = new Set(ctx.services.keys());
  if (isControl(scenario)) for (const s of scenario.watches.services) names.add(s);
  for (const signal of scenario.signals ?? []) if ("service" in signal) names.add(signal.service);
  return [...names];
}

async function signalsSeen(lab: ScenarioLab, scenario: Scenario, since: number): Promise<boolean> {
  const checked = await checkSignals(lab, scenario, since);
  return checked.length > 0 && checked.every((s) => s.seen);
}

export function describeSignal(signal: Signal): string {
  if ("event" in signal)
    return `${signal.event} of ${signal.service}${signal.source ? ` (${signal.source})` : ""}${(signal.atLeast ?? 1) > 1 ? ` ×${signal.atLeast}+` : ""}`;
  if ("metric" in signal) return `${signal.metric} of ${signal.service} ${signal.test} ${signal.value}`;
  return `disk of ${signal.disk} above ${Math.round(signal.usedAbove * 100)} % used`;
}

/** Each declared signal, looked up in the store through the API (or, for a disk, on the host). */
export async function checkSignals(lab: ScenarioLab, scenario: Scenario, since: number): Promise<ScenarioResult["signals"]> {
  const out: ScenarioResult["signals"] = [];
  for (const signal of scenario.signals ?? []) {
    const name = describeSignal(signal);
    try {
      if ("event" in signal) {
        const { events } = await lab.api.get(
          `/v1/events?since=${since}&kind=${encodeURIComponent(signal.event)}&limit=1000`,
          eventsResponseSchema,
        );
        const matching = events.filter(
          (e) =>
            (e.subject.name === signal.service || e.attributes.service === signal.service) &&
            (!signal.source || e.source === signal.source),
        );
        out.push({ signal: name, seen: matching.length >= (signal.atLeast ?? 1), detail: `${matching.length} event(s)` });
      } else if ("metric" in signal) {
        const answer = await lab.api.get(
          `/v1/services/${encodeURIComponent(signal.service)}/metrics?metric=${encodeURIComponent(signal.metric)}&since=${since}&resolution=raw`,
          metricsResponseSchema,
        );
        const points = answer.series.flatMap((s) => s.points).sort((a, b) => a.t - b.t);
        const first = points[0]?.avg ?? Number.NaN;
        const last = points.at(-1)?.avg ?? Number.NaN;
        const max = Math.max(...points.map((p) => p.max));
        const seen = signal.test === "grows" ? last - first > signal.value : max > signal.value;
        out.push({ signal: name, seen, detail: `${points.length} sample(s), first ${fmt(first)}, last ${fmt(last)}, max ${fmt(max)}` });
      } else {
        const mount = lab.hosts[signal.disk].data;
        if (!mount) throw new Error(`${signal.disk} has no data volume`);
        const fs = statfsSync(mount);
        const used = 1 - fs.bavail / fs.blocks;
        // Host metrics have no API route: the store's series table says whether the agent reported this disk.
        // The mount's path is this run's own; a series' last_seen_at moves only now and then, so any time in the run counts.
        const series = storeSeries(lab, signal.disk, "host.disk.used_bytes", 0).filter((s) => s.labels.includes(mount));
        out.push({
          signal: name,
          seen: used > signal.usedAbove && series.length > 0,
          detail: `${Math.round(used * 1000) / 10} % used (statfs); host.disk.used_bytes of ${mount} ${series.length > 0 ? "reported" : "not reported"} by ${signal.disk}`,
        });
      }
    } catch (error) {
      out.push({ signal: name, seen: false, detail: `could not check: ${(error as Error).message}` });
    }
  }
  return out;
}

/** Series an agent reported since `since`, from the coordinator's store (read-only). */
function storeSeries(lab: ScenarioLab, agent: string, metric: string, since: number): Array<{ labels: string }> {
  const sqlite = new Database(join(lab.coordinator.options.dataDir, "coral.db"), { readonly: true });
  try {
    return sqlite
      .prepare<[string, string, number], { labels: string }>(
        "SELECT labels FROM metric_series WHERE agent_name = ? AND name = ? AND last_seen_at >= ?",
      )
      .all(agent, metric, since);
  } finally {
    sqlite.close();
  }
}

const fmt = (n: number) =>
  Number.isFinite(n) ? (Math.abs(n) >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : String(Math.round(n * 100) / 100)) : "-";
