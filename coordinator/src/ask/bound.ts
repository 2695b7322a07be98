/**
 * What a tool returns fits a model's context: at most RESULT_LIMIT_BYTES once serialised. A
 * list is cut to the longest prefix that fits (and says where to go on); anything still too
 * large has its long strings and lists shortened.
 */
import type { Citation } from "@coral-mesh/sdk-proto";
import type { ToolResult } from "./tool.js";

export const RESULT_LIMIT_BYTES = 8 * 1024;

export const sizeOf = (value: unknown): number => Buffer.byteLength(JSON.stringify(value));

/**
 * The most of `items` (in order) that `make` fits within the limit. `make` is told whether
 * the list was cut, so it can say so and give a cursor.
 */
export function fitList<T>(
  items: readonly T[],
  make: (kept: readonly T[], cut: boolean) => unknown,
  limit = RESULT_LIMIT_BYTES - 64,
): { content: unknown; kept: readonly T[]; cut: boolean } {
  const whole = make(items, false);
  if (sizeOf(whole) <= limit) return { content: whole, kept: items, cut: false };
  // The largest n whose prefix fits (the size grows with n, so halving finds it); at least one,
  // which `bounded` then shortens if it alone is too large.
  let lo = Math.min(1, items.length);
  let hi = items.length - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (sizeOf(make(items.slice(0, mid), true)) <= limit) lo = mid;
    else hi = mid - 1;
  }
  const kept = items.slice(0, lo);
  return { content: make(kept, true), kept, cut: true };
}

/** `value` with strings longer than `text` characters and lists longer than `list` items cut, marked where cut. */
export function clamp(value: unknown, text: number, list: number): unknown {
  if (typeof value === "string") return value.length > text ? `${value.slice(0, text)}… (cut)` : value;
  if (Array.isArray(value)) {
    const kept = value.slice(0, list).map((v) => clamp(v, text, list));
    return value.length > list ? [...kept, `… ${value.length - list} more`] : kept;
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) out[key] = clamp(child, text, list);
    return out;
  }
  return value;
}

/** The result, shortened further while it is still over the limit. */
export function bounded(content: unknown, citations: Citation[], truncated: boolean): ToolResult {
  let out = content;
  let cut = truncated;
  for (const [text, list] of [
    [400, 40],
    [200, 20],
    [100, 10],
    [60, 5],
    [30, 3],
  ] as const) {
    if (sizeOf(out) <= RESULT_LIMIT_BYTES - 32) break;
    out = clamp(content, text, list);
    cut = true;
  }
  if (sizeOf(out) > RESULT_LIMIT_BYTES - 32) {
    out = { truncated: true, hint: "The result was too large to show; narrow the question (one service, a shorter window)." };
    cut = true;
  }
  if (cut && out !== null && typeof out === "object" && !Array.isArray(out) && !("truncated" in out)) {
    out = { ...(out as Record<string, unknown>), truncated: true };
  }
  return { content: out, citations: dedupe(citations), ...(cut ? { truncated: true } : {}) };
}

export function dedupe(citations: readonly Citation[]): Citation[] {
  const seen = new Set<string>();
  return citations.filter((c) => {
    const key = `${c.kind}\u0000${c.id}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
