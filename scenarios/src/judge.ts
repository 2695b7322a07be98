/**
 * How a run is judged, kept apart from the lab so that it is tested in milliseconds: which
 * finding is the top-1, whether it is the expected root cause, which findings count against a
 * control, and whether the totals meet the targets.
 */
import type { Finding } from "@coral-mesh/sdk-proto";
import { z } from "zod";
import type { ExpectedRoot } from "./scenario.js";

/** Targets from the issue: top-1 accuracy with the SDK and without, and no control false positive. */
export const TARGETS = { sdk: 0.9, passive: 0.75, controlFalsePositives: 0 } as const;

const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 } as const;

/** The ranking rule: open first, then severity, then confidence descending, then openedAt ascending. */
export function rank(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) =>
      (a.state === "open" ? 0 : 1) - (b.state === "open" ? 0 : 1) ||
      SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] ||
      b.confidence - a.confidence ||
      a.openedAt - b.openedAt,
  );
}

/**
 * The top-1 of a scenario: the first open finding, in the coordinator's order (it ranks them),
 * among those opened since the scenario started. Findings of earlier scenarios do not count.
 */
export function topOf(findings: readonly Finding[], since: number): Finding | undefined {
  return findings.find((f) => f.state === "open" && f.openedAt >= since);
}

export function isExpected(expected: ExpectedRoot, finding: Finding | undefined): boolean {
  if (!finding) return false;
  const root = finding.rootCause;
  if (root.kind !== expected.kind || root.service !== expected.service) return false;
  return expected.agent === undefined || root.agent === expected.agent;
}

/**
 * Findings of severity warning or above opened in a control's window about its services, or
 * pointing at one of them as their root (a host's CPU pressure names the service saturating it).
 */
export function controlFalsePositives(
  findings: readonly Finding[],
  window: { from: number; to: number },
  watches: { services: readonly string[] },
): Finding[] {
  const services = new Set(watches.services);
  return findings.filter(
    (f) =>
      f.severity !== "info" &&
      f.openedAt >= window.from &&
      f.openedAt <= window.to &&
      ((f.service !== null && services.has(f.service)) || (f.rootCause.service !== null && services.has(f.rootCause.service))),
  );
}

/**
 * A control's hosts' own findings (no service) of severity warning or above: reported, not
 * counted. Host CPU is the whole machine's, and on a shared machine other work than the lab's
 * can keep it busy.
 */
export function controlHostFindings(
  findings: readonly Finding[],
  window: { from: number; to: number },
  agents: readonly string[],
): Finding[] {
  return findings.filter(
    (f) =>
      f.severity !== "info" &&
      f.service === null &&
      f.rootCause.service === null &&
      f.agent !== null &&
      agents.includes(f.agent) &&
      f.openedAt >= window.from &&
      f.openedAt <= window.to,
  );
}

/** The question a scenario asks of `coral ask`: it names the service at fault (or the host). */
export function askQuestion(expected: ExpectedRoot): string {
  return `What is wrong with ${expected.service ?? expected.agent ?? "the mesh"}?`;
}

/**
 * Whether the opening context of `coral ask` holds the finding and its evidence: its id among
 * the context's findings and its block in the text, with its first note (or, without notes, its
 * evidence events counted) and its recommended step.
 */
export function askContextHolds(
  context: { text: string; findingIds: readonly string[] },
  finding: Finding,
): { holds: boolean; detail: string } {
  if (!context.findingIds.includes(finding.id)) {
    return { holds: false, detail: `${finding.id} is not among the context's findings (${context.findingIds.join(", ") || "none"})` };
  }
  if (!context.text.includes(`[${finding.id}]`)) return { holds: false, detail: `the text has no block for ${finding.id}` };
  const evidence = finding.evidence as Finding["evidence"] | undefined;
  const note = evidence?.notes?.[0];
  const shown = note ?? (evidence?.events?.length ? `${evidence.events.length} events` : undefined);
  if (shown !== undefined && !context.text.includes(shown)) return { holds: false, detail: `the text lacks its evidence: "${shown}"` };
  const step = (finding.recommendation as Finding["recommendation"] | undefined)?.step;
  if (step && !context.text.includes(step)) return { holds: false, detail: `the text lacks its recommendation: "${step}"` };
  const rank = context.findingIds.indexOf(finding.id) + 1;
  return {
    holds: true,
    detail: `${finding.id} is finding ${rank} of ${context.findingIds.length}, with ${shown ? "its evidence" : "no evidence to show"}`,
  };
}

export const findingBriefSchema = z.object({
  id: z.string(),
  kind: z.string(),
  severity: z.string(),
  state: z.string(),
  service: z.string().nullable(),
  agent: z.string().nullable(),
  rootCause: z.object({ service: z.string().nullable(), agent: z.string().nullable(), kind: z.string() }),
  confidence: z.number(),
  summary: z.string(),
  openedAt: z.number(),
});
export type FindingBrief = z.infer<typeof findingBriefSchema>;

export const brief = (f: Finding): FindingBrief => ({
  id: f.id,
  kind: f.kind,
  severity: f.severity,
  state: f.state,
  service: f.service,
  agent: f.agent,
  rootCause: { service: f.rootCause.service, agent: f.rootCause.agent, kind: f.rootCause.kind },
  confidence: f.confidence,
  summary: f.summary,
  openedAt: f.openedAt,
});

/** One scenario's outcome, as scenarios-result.json holds it. */
export const scenarioResultSchema = z.object({
  name: z.string(),
  via: z.enum(["sdk", "passive"]),
  control: z.boolean(),
  expected: z.object({ service: z.string().nullable(), agent: z.string().optional(), kind: z.string() }).nullable(),
  /** Fault scenarios: the top-1 when it was right, else the last top-1 seen. */
  top: findingBriefSchema.nullable(),
  right: z.boolean(),
  /** Seconds from the fault to the poll that first saw the expected top-1. */
  secondsToFinding: z.number().nullable(),
  /** The same by the coordinator's clock: from the fault to the finding's openedAt (negative if it opened before). */
  openedSecondsAfterFault: z.number().nullable(),
  /** Controls: what opened in the window against it. */
  falsePositives: z.array(findingBriefSchema),
  /** Controls: its hosts' own findings in the window (not counted: see controlHostFindings). */
  hostFindings: z.array(findingBriefSchema),
  /** Every finding opened while it ran. */
  findings: z.array(findingBriefSchema),
  /** What the store showed: each declared signal, and whether it did. */
  signals: z.array(z.object({ signal: z.string(), seen: z.boolean(), detail: z.string() })),
  /** Fault scenarios: whether `coral ask`'s opening context for a question naming the fault holds the expected finding and its evidence. */
  askContext: z.object({ holds: z.boolean(), detail: z.string() }).nullable().optional(),
  /** Why it could not be judged (the lab broke, the API failed), if it could not. */
  error: z.string().nullable(),
  startedAt: z.number(),
  faultAt: z.number().nullable(),
  endedAt: z.number(),
});
export type ScenarioResult = z.infer<typeof scenarioResultSchema>;

export interface Totals {
  sdk: { right: number; of: number };
  passive: { right: number; of: number };
  controlFalsePositives: number;
  controls: number;
  errored: number;
  /** The targets each total missed, in words; empty when all were met. */
  missed: string[];
}

const share = (t: { right: number; of: number }) => (t.of === 0 ? 1 : t.right / t.of);

export function totals(results: readonly ScenarioResult[]): Totals {
  const faults = results.filter((r) => !r.control);
  const of = (via: "sdk" | "passive") => {
    const these = faults.filter((r) => r.via === via);
    return { right: these.filter((r) => r.right).length, of: these.length };
  };
  const t: Totals = {
    sdk: of("sdk"),
    passive: of("passive"),
    controlFalsePositives: results.filter((r) => r.control).reduce((n, r) => n + r.falsePositives.length, 0),
    controls: results.filter((r) => r.control).length,
    errored: results.filter((r) => r.error !== null).length,
    missed: [],
  };
  if (t.sdk.of > 0 && share(t.sdk) < TARGETS.sdk) t.missed.push(`SDK top-1 accuracy ${percent(share(t.sdk))} < ${percent(TARGETS.sdk)}`);
  if (t.passive.of > 0 && share(t.passive) < TARGETS.passive)
    t.missed.push(`passive top-1 accuracy ${percent(share(t.passive))} < ${percent(TARGETS.passive)}`);
  if (t.controlFalsePositives > TARGETS.controlFalsePositives) t.missed.push(`${t.controlFalsePositives} control false positive(s)`);
  if (t.errored > 0) t.missed.push(`${t.errored} scenario(s) errored`);
  return t;
}

export const percent = (x: number) => `${Math.round(x * 100)} %`;
