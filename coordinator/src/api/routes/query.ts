import { CoralError } from "@coral/sdk-proto";
import type * as z from "zod";

/** A route's query string through its schema; the first problem becomes an `invalid_query` for people. */
export function parseQuery<S extends z.ZodType>(schema: S, query: Record<string, string>): z.infer<S> {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new CoralError("invalid_query", `${issue?.path.join(".") || "query"}: ${issue?.message}`);
}
