/** Plain-text output for people: aligned tables and times relative to now. */

/** Left-aligned columns, two spaces apart; the header row in capitals. */
export function table(header: string[], rows: string[][]): string {
  const all = [header.map((h) => h.toUpperCase()), ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)));
  return all
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** "4s ago", "3m ago", "2h ago", "5d ago"; "in 23h" for the future; "never" for null. */
export function ago(time: number | null | undefined, now = Date.now()): string {
  if (time === null || time === undefined) return "never";
  const delta = now - time;
  const span = humanSpan(Math.abs(delta));
  return delta >= 0 ? `${span} ago` : `in ${span}`;
}

export function humanSpan(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m}m`;
  const h = Math.round(m / 60);
  if (h < 36) return `${h}h`;
  return `${Math.round(h / 24)}d`;
}

/** An ISO time without milliseconds, in UTC. */
export function isoTime(time: number): string {
  return new Date(time).toISOString().replace(/\.\d{3}Z$/, "Z");
}
