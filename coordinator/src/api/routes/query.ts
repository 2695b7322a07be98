import { CoralError, describeIssues, issueDetails } from "@coral-mesh/sdk-proto";
import type * as z from "zod";

/** A route's query string through its schema; the first problem becomes an `invalid_query` for people. */
export function parseQuery<S extends z.ZodType>(schema: S, query: Record<string, string>): z.infer<S> {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  throw new CoralError("invalid_query", `${describeIssues(parsed.error)}.`, { details: { issues: issueDetails(parsed.error) } });
}

/** A window from `since` and `until` (Unix ms): by default the hour up to now. */
export function windowOf(query: { since?: number | undefined; until?: number | undefined }, now: number): { since: number; until: number } {
  const until = query.until ?? now;
  const since = query.since ?? until - 3_600_000;
  if (since > until) throw new CoralError("invalid_query", "since: the window starts after it ends; give a since before until.");
  return { since, until };
}

/** An item with only the named fields (`?fields=`), in the order the item has them. */
export function pick<T extends object, K extends keyof T>(item: T, fields: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const key of Object.keys(item) as K[]) if (fields.includes(key)) out[key] = item[key];
  return out;
}
