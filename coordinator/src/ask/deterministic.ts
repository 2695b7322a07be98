/**
 * The answer from the findings alone: what `coral ask` says with no model configured, and
 * after a model failed. The same findings give the same words. The root cause first, then
 * its evidence by id, then the recommendation's step; nothing open says so plainly, as the
 * findings engine opened nothing (no guessing at a cause it did not find).
 */
import type { Citation, Finding } from "@coral-mesh/sdk-proto";
import { redactText } from "./redact.js";

export const MODEL_WOULD_EXPLAIN =
  "A configured model would explain more: set ANTHROPIC_API_KEY, or ask.baseUrl for a local model (docs/ask.md).";

const MAX_FINDINGS = 5;
const MAX_EVENTS = 6;

export interface DeterministicAnswer {
  text: string;
  citations: Citation[];
  findings: Finding[];
}

/** Findings about a service or agent the question names come first; the engine's ranking otherwise. */
function relevant(question: string, findings: readonly Finding[]): Finding[] {
  const words = new Set(question.toLowerCase().match(/[a-z0-9][a-z0-9_.-]*/g) ?? []);
  const named = (f: Finding) =>
    [f.service, f.agent, f.rootCause.service].some((name) => name !== null && name !== undefined && words.has(name.toLowerCase()));
  const open = findings.filter((f) => f.state === "open");
  const pool = open.length > 0 ? open : [];
  return [...pool.filter(named), ...pool.filter((f) => !named(f))];
}

const where = (service: string | null, agent: string | null) =>
  service && agent ? `${service}@${agent}` : (service ?? agent ?? "the mesh");

export function deterministicAnswer(question: string, findings: readonly Finding[], note?: string): DeterministicAnswer {
  const ranked = relevant(question, findings).slice(0, MAX_FINDINGS);
  const citations: Citation[] = [];
  const lines: string[] = [];
  if (ranked.length === 0) {
    lines.push(
      "Coral sees nothing wrong: no finding is open. Its detectors (crash loops, bad deploys, saturation, leaks, failing dependencies and health checks, offline agents) found nothing to report, so there is no root cause to name.",
    );
  } else {
    const [top, ...rest] = ranked as [Finding, ...Finding[]];
    const root = top.rootCause;
    citations.push({ kind: "finding", id: top.id });
    lines.push(
      `Root cause: ${top.summary} (${root.kind} on ${where(root.service, root.agent)}; ${top.severity}, confidence ${Math.round(top.confidence * 100)}%; finding ${top.id}${root.findingId ? `, caused by finding ${root.findingId}` : ""}).`,
    );
    const evidence: string[] = [];
    const events = top.evidence.events.slice(-MAX_EVENTS);
    if (events.length > 0) {
      evidence.push(`events ${events.map((e) => `#${e.id} (${e.kind}${e.agent ? ` on ${e.agent}` : ""})`).join(", ")}`);
      for (const e of events) citations.push({ kind: "event", id: String(e.id) });
    }
    for (const m of top.evidence.metrics.slice(0, 3)) {
      const summary = Object.entries(m.summary)
        .slice(0, 4)
        .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(2)}`)
        .join(", ");
      evidence.push(`${m.metric} of ${m.subject} on ${m.agent}${summary ? ` (${summary})` : ""}`);
    }
    for (const edge of top.evidence.edges.slice(0, 3)) evidence.push(`the dependency ${edge.from} → ${edge.to}`);
    for (const check of top.evidence.checks.slice(0, 3)) evidence.push(`check ${check.name} ${check.passing ? "passing" : "failing"}`);
    if (evidence.length > 0) lines.push(`Evidence: ${evidence.join("; ")}.`);
    for (const n of top.evidence.notes.slice(0, 3)) lines.push(`  - ${n}`);
    lines.push(`Recommended step: ${top.recommendation.step}.`);
    if (rest.length > 0) {
      lines.push(
        `Also open: ${rest.map((f) => `${f.id} (${f.severity}, ${f.kind} on ${where(f.service, f.agent)}: ${f.summary})`).join("; ")}.`,
      );
      for (const f of rest) citations.push({ kind: "finding", id: f.id });
    }
  }
  lines.push("", note ? `${note} ${MODEL_WOULD_EXPLAIN}` : MODEL_WOULD_EXPLAIN);
  // Findings come from the store, whose event messages are free text: redacted like everything else that leaves.
  return { text: redactText(lines.join("\n")), citations, findings: ranked };
}
