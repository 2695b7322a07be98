/** The table `npm run scenarios` prints, and its totals. */
import { percent, type ScenarioResult, type Totals } from "./judge.js";

const expectedText = (r: ScenarioResult) =>
  r.control
    ? "no warning+"
    : r.expected
      ? `${r.expected.service ?? "(host)"} ${r.expected.kind}${r.expected.agent && r.expected.service === null ? ` @${r.expected.agent}` : ""}`
      : "";

function foundText(r: ScenarioResult): string {
  if (r.error) return r.error.includes("no findings engine") ? "no engine" : "error";
  if (r.control)
    return r.falsePositives.length === 0 ? "none" : r.falsePositives.map((f) => `${f.service ?? "(host)"} ${f.kind}`).join(", ");
  if (!r.top) return "none";
  const root = r.top.rootCause;
  return `${root.service ?? "(host)"} ${root.kind}${root.service === null && root.agent ? ` @${root.agent}` : ""}`;
}

export function resultRows(results: readonly ScenarioResult[]): string[][] {
  return results.map((r) => [
    r.name,
    r.via,
    expectedText(r),
    foundText(r),
    r.error ? "error" : r.right ? "yes" : "no",
    r.control || !r.top ? "" : r.top.confidence.toFixed(2),
    r.secondsToFinding === null ? "" : `${r.secondsToFinding.toFixed(1)} s`,
    r.askContext ? (r.askContext.holds ? "yes" : "no") : "",
  ]);
}

export const HEADER = ["scenario", "via", "expected", "top-1 found", "right", "confidence", "fault → finding", "ask context"];

/** A Markdown table (what docs/findings.md and the closing note take), padded to line up. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...rows.map(line)].join("\n");
}

export function formatTotals(t: Totals): string {
  const acc = (x: { right: number; of: number }) => (x.of === 0 ? "no scenarios" : `${x.right}/${x.of} (${percent(x.right / x.of)})`);
  return [
    `top-1 accuracy, SDK:     ${acc(t.sdk)}  (target ≥ 90 %)`,
    `top-1 accuracy, passive: ${acc(t.passive)}  (target ≥ 75 %)`,
    `control false positives: ${t.controlFalsePositives} in ${t.controls} control(s)  (target 0)`,
    ...(t.errored > 0 ? [`errored:                 ${t.errored}`] : []),
    t.missed.length === 0 ? "targets met" : `targets missed: ${t.missed.join("; ")}`,
  ].join("\n");
}
