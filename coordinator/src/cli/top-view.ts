/**
 * What `coral top` shows, apart from the terminal: the rows (a service each, with its CPU and
 * memory summed over its instances and its open findings), their orders, and the plain-text
 * form printed when stdout is not a terminal.
 */
import type { Finding, LatestSample, ServiceSummary, Severity } from "@coral-mesh/sdk-proto";
import { severities } from "@coral-mesh/sdk-proto";
import { table } from "./format.js";
import { formatValue } from "./model-commands.js";

export interface TopSnapshot {
  services: ServiceSummary[];
  samples: LatestSample[];
  /** Open findings, most severe first. */
  findings: Finding[];
  at: number;
}

export interface TopRow {
  name: string;
  health: ServiceSummary["health"];
  instances: number;
  agents: number;
  /** Cores, summed over instances that reported; null when none did. */
  cpu: number | null;
  memory: number | null;
  findings: number;
  worst: Severity | null;
}

export const sortOrders = ["name", "cpu", "memory", "findings"] as const;
export type SortOrder = (typeof sortOrders)[number];

export function topRows(snapshot: TopSnapshot): TopRow[] {
  const sums = new Map<string, { cpu: number | null; memory: number | null }>();
  for (const s of snapshot.samples) {
    const sum = sums.get(s.service) ?? { cpu: null, memory: null };
    if (s.metric === "service.cpu.cores") sum.cpu = (sum.cpu ?? 0) + s.value;
    if (s.metric === "service.memory.rss_bytes") sum.memory = (sum.memory ?? 0) + s.value;
    sums.set(s.service, sum);
  }
  return snapshot.services.map((s): TopRow => {
    const own = snapshot.findings.filter((f) => f.service === s.name || f.rootCause.service === s.name);
    const worst = severities.find((severity) => own.some((f) => f.severity === severity)) ?? null;
    return {
      name: s.name,
      health: s.health,
      instances: s.instanceCount,
      agents: s.agents.length,
      cpu: sums.get(s.name)?.cpu ?? null,
      memory: sums.get(s.name)?.memory ?? null,
      findings: own.length,
      worst,
    };
  });
}

const rank = (severity: Severity | null) => (severity === null ? severities.length : severities.indexOf(severity));

export function sortRows(rows: readonly TopRow[], order: SortOrder): TopRow[] {
  const byName = (a: TopRow, b: TopRow) => a.name.localeCompare(b.name);
  const compare: Record<SortOrder, (a: TopRow, b: TopRow) => number> = {
    name: byName,
    cpu: (a, b) => (b.cpu ?? -1) - (a.cpu ?? -1) || byName(a, b),
    memory: (a, b) => (b.memory ?? -1) - (a.memory ?? -1) || byName(a, b),
    findings: (a, b) => rank(a.worst) - rank(b.worst) || b.findings - a.findings || byName(a, b),
  };
  return [...rows].sort(compare[order]);
}

export const cells = (row: TopRow): string[] => [
  row.name,
  row.health === "unknown" ? "-" : row.health,
  String(row.instances),
  String(row.agents),
  row.cpu === null ? "-" : row.cpu.toFixed(2),
  row.memory === null ? "-" : formatValue(row.memory, "bytes"),
  row.findings === 0 ? "-" : `${row.findings} ${row.worst}`,
];

export const HEADER = ["service", "health", "inst", "agents", "cpu", "memory", "findings"];

export function findingLine(f: Finding): string[] {
  return [f.severity, f.service ?? f.agent ?? "-", f.kind, f.summary];
}

export function countsLine(findings: readonly Finding[]): string {
  if (findings.length === 0) return "no open findings";
  const parts = severities.map((s) => [s, findings.filter((f) => f.severity === s).length] as const).filter(([, n]) => n > 0);
  return `${findings.length} open finding${findings.length === 1 ? "" : "s"} (${parts.map(([s, n]) => `${n} ${s}`).join(", ")})`;
}

/** The view once, as text: what `coral top` prints into a pipe or a file. */
export function topText(snapshot: TopSnapshot, order: SortOrder = "name"): string {
  const rows = sortRows(topRows(snapshot), order);
  const lines = [
    `${snapshot.services.length} service${snapshot.services.length === 1 ? "" : "s"}, ${countsLine(snapshot.findings)}`,
    "",
    rows.length === 0 ? "No services yet." : table(HEADER, rows.map(cells)),
  ];
  if (snapshot.findings.length > 0) lines.push("", table(["severity", "service", "kind", "summary"], snapshot.findings.map(findingLine)));
  return `${lines.join("\n")}\n`;
}
