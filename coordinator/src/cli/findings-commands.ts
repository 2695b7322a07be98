/** `coral findings`, `coral findings show ID`, `coral summary`: what is wrong, why, and what to do. */
import {
  CoralError,
  type Finding,
  type FindingCounts,
  type FindingKind,
  type FindingResponse,
  type FindingsResponse,
  findingKinds,
  parseDuration,
  type SummaryResponse,
  severities,
} from "@coral-mesh/sdk-proto";
import { ApiClient, type ApiTarget } from "./api-client.js";
import { ago, humanSpan, isoTime, table } from "./format.js";
import type { ExitCode, Io } from "./output.js";

type Json = { json?: boolean };

const printJson = (io: Io, value: unknown) => io.out(`${JSON.stringify(value, null, 2)}\n`);

/** "api@web-1", "api" (on several agents), "web-1" (an agent's or a host's finding), or "-". */
export function where(service: string | null, agent: string | null): string {
  if (service && agent) return `${service}@${agent}`;
  return service ?? agent ?? "-";
}

/** "1 critical, 2 warning", or "none open". */
export function countsLine(counts: FindingCounts): string {
  const parts = severities.filter((s) => counts[s] > 0).map((s) => `${counts[s]} ${s}`);
  return parts.length === 0 ? "none open" : parts.join(", ");
}

export async function findingsList(
  options: ApiTarget & Json & { all?: boolean; service?: string; agent?: string; kind?: string },
  io: Io,
): Promise<ExitCode> {
  if (options.kind !== undefined && !findingKinds.includes(options.kind as FindingKind)) {
    throw new CoralError("config_invalid", `--kind ${options.kind} is not a finding kind; the kinds are ${findingKinds.join(", ")}.`);
  }
  const query = new URLSearchParams();
  if (options.all) query.set("all", "true");
  if (options.service) query.set("service", options.service);
  if (options.agent) query.set("agent", options.agent);
  if (options.kind) query.set("kind", options.kind);
  query.set("limit", "1000");
  const { findings } = await ApiClient.locate(options).request<FindingsResponse>("GET", `/v1/findings?${query}`);
  if (options.json) {
    printJson(io, findings);
    return 0;
  }
  const filtered = options.service || options.agent || options.kind;
  if (findings.length === 0) {
    io.out(`${options.all ? "No findings at all" : "No open findings"}${filtered ? " match" : ""}.\n`);
    return 0;
  }
  const now = Date.now();
  io.out(
    `${table(
      ["id", "severity", ...(options.all ? ["state"] : []), "kind", "where", "summary", "recommendation", "age"],
      findings.map((f) => [
        f.id,
        f.severity,
        ...(options.all ? [f.state] : []),
        f.kind,
        where(f.service, f.agent),
        f.summary,
        `→ ${f.recommendation.step}`,
        ago(f.since, now),
      ]),
    )}\n\`coral findings show ID\` shows a finding's evidence.\n`,
  );
  return 0;
}

export async function findingShow(id: string, options: ApiTarget & Json, io: Io): Promise<ExitCode> {
  const { finding } = await ApiClient.locate(options).request<FindingResponse>("GET", `/v1/findings/${encodeURIComponent(id)}`);
  if (options.json) printJson(io, finding);
  else io.out(describeFinding(finding, Date.now()));
  return 0;
}

/** A finding for a person: what, where, why (its root cause), how sure, what to do, and its evidence as a timeline. */
export function describeFinding(f: Finding, now: number): string {
  const state =
    f.state === "open"
      ? `open since ${isoTime(f.openedAt)} (${ago(f.openedAt, now)})`
      : `resolved at ${isoTime(f.resolvedAt ?? f.updatedAt)} (${ago(f.resolvedAt ?? f.updatedAt, now)}), opened ${isoTime(f.openedAt)}`;
  const lines = [`${f.id}  ${f.severity.toUpperCase()} ${f.kind} on ${where(f.service, f.agent)}, ${state}`, `  ${f.summary}`, ""];
  const rc = f.rootCause;
  if (rc.service !== f.service || (rc.service === null && rc.agent !== f.agent)) {
    lines.push(`  root cause:     ${rc.kind} on ${where(rc.service, rc.agent)}${rc.findingId ? ` (finding ${rc.findingId})` : ""}`);
  }
  lines.push(`  confidence:     ${Math.round(f.confidence * 100)}%`);
  lines.push(`  recommendation: ${f.recommendation.action}: ${f.recommendation.step}`);
  lines.push("", "Evidence:");
  const timed: Array<{ time: number; order: number; text: string }> = [];
  const e = f.evidence;
  for (const event of e.events)
    timed.push({ time: event.time, order: 0, text: `event ${event.kind}${event.agent ? ` on ${event.agent}` : ""} (#${event.id})` });
  for (const m of e.metrics) {
    const labels =
      m.labels && Object.keys(m.labels).length > 0
        ? `{${Object.entries(m.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(",")}}`
        : "";
    const numbers = Object.entries(m.summary)
      .map(([k, v]) => `${k}=${formatNumber(v)}`)
      .join(" ");
    timed.push({
      time: m.until,
      order: 1,
      text: `${m.metric}${labels} of ${m.subject}@${m.agent} over ${humanSpan(m.until - m.since)}: ${numbers}`,
    });
  }
  for (const c of e.checks) timed.push({ time: c.since, order: 2, text: `check ${c.name} ${c.passing ? "passing" : "failing"}` });
  timed.sort((a, b) => a.time - b.time || a.order - b.order);
  for (const t of timed) lines.push(`  ${isoTime(t.time)}  ${t.text}`);
  for (const edge of e.edges) lines.push(`  depends:  ${edge.from} → ${edge.to}`);
  for (const note of e.notes) lines.push(`  note:     ${note}`);
  if (timed.length === 0 && e.edges.length === 0 && e.notes.length === 0) lines.push("  (none recorded)");
  return `${lines.join("\n")}\n`;
}

const formatNumber = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));

export async function summaryShow(options: ApiTarget & Json & { since?: string }, io: Io): Promise<ExitCode> {
  const text = options.since ?? "24h";
  const span = parseDuration(text);
  const time = span === undefined ? Date.parse(text) : Number.NaN;
  if (span === undefined && Number.isNaN(time))
    throw new CoralError("config_invalid", `--since ${text} is neither a span like 24h or 7d nor a time like 2026-11-29T10:00:00Z.`);
  const window = span ?? Math.max(0, Math.round(Date.now() - time));
  const digest = await ApiClient.locate(options).request<SummaryResponse>("GET", `/v1/summary?window=${window}`);
  if (options.json) printJson(io, digest);
  else io.out(describeSummary(digest));
  return 0;
}

/** The digest for a person: open findings, changes, incidents and their fixes, quiet services, SDK adoption. */
export function describeSummary(s: SummaryResponse): string {
  const lines = [`The last ${humanSpan(s.until - s.since)} (${isoTime(s.since)} to ${isoTime(s.until)})`, ""];
  lines.push(`Open findings: ${countsLine(s.open)}`, "");
  const { deploys, newServices, newDependencies } = s.changes;
  lines.push("What changed:");
  if (deploys.length + newServices.length + newDependencies.length === 0) lines.push("  nothing: no deploys, new services or dependencies");
  for (const d of deploys) {
    const versions = d.from || d.to ? ` ${d.from ?? "?"} → ${d.to ?? "?"}` : "";
    lines.push(`  deploy  ${where(d.service, d.agent)}${versions} at ${isoTime(d.time)}`);
  }
  for (const n of newServices) lines.push(`  new service  ${n.service}, first seen ${isoTime(n.firstSeen)}`);
  for (const n of newDependencies) lines.push(`  new dependency  ${n.from} → ${n.to}, first seen ${isoTime(n.firstSeen)}`);
  lines.push("", "What broke:");
  if (s.incidents.length === 0) lines.push("  nothing: no finding opened");
  for (const { finding: f, fixedBy } of s.incidents) {
    const outcome =
      f.state === "open" ? "still open" : `resolved ${isoTime(f.resolvedAt ?? f.updatedAt)}${fixedBy ? `, after ${fixedBy}` : ""}`;
    lines.push(`  ${f.severity} ${f.kind} on ${where(f.service, f.agent)}: ${f.summary} (${outcome}; ${f.id})`);
  }
  lines.push("", `Quiet (no warning or worse): ${s.quiet.length === 0 ? "none" : s.quiet.join(", ")}`, "");
  const total = s.sdk.sdkServices.length + s.sdk.passiveOnly.length;
  lines.push(
    `SDK adoption: ${Math.round(s.sdk.adoption * 100)}% (${s.sdk.sdkServices.length} of ${total} service${total === 1 ? "" : "s"})${s.sdk.sdkServices.length > 0 ? `: ${s.sdk.sdkServices.join(", ")}` : ""}`,
  );
  for (const p of s.sdk.passiveOnly) lines.push(`  ${p.service} would gain ${p.gain}`);
  return `${lines.join("\n")}\n`;
}
