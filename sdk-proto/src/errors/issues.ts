/**
 * zod's issues as sentences for people. zod says `ttlMs: Too small: expected number to be
 * >=1000`; a person who typed `--ttl 0s` should read "the TTL must be at least 1s". Each
 * boundary names its fields once (a label, and how to show a value of it), and every issue
 * of every kind becomes a sentence from those, so no message is written one at a time.
 */
import type * as z from "zod";

/** How one field is named to people, and how its numbers are shown. */
export interface FieldLabel {
  /** "the TTL", "--uses", "the agent's name". */
  label: string;
  /** `duration`: a number of milliseconds shown as "1s", "5m", "365d". */
  unit?: "duration";
}

/** Labels by dotted path (`ttlMs`, `services.0.match`); a path without one is shown as it is. */
export type FieldLabels = Record<string, string | FieldLabel>;

/** Milliseconds in the largest unit that divides them: 1000 → "1s", 90_000 → "90s", 86_400_000 → "1d". */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1_000],
  ] as const) {
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

type Issue = z.core.$ZodIssue;

/** zod's own messages; anything else was written by whoever wrote the schema, for people. */
const ZOD_DEFAULT = /^(Invalid|Too (small|big)|Unrecognized key|Expected|Number must)/;

const article = (word: string) => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);
const TYPE_NAMES: Record<string, string> = {
  int: "a whole number",
  number: "a number",
  string: "text",
  boolean: "true or false",
  array: "a list",
  object: "an object",
};

function labelOf(path: string, labels: FieldLabels): FieldLabel {
  const entry = labels[path];
  if (entry === undefined) return { label: path === "" ? "the value" : path };
  return typeof entry === "string" ? { label: entry } : entry;
}

function missing(issue: Issue): boolean {
  if (Object.hasOwn(issue, "input")) return (issue as { input?: unknown }).input === undefined;
  return /received undefined$/.test(issue.message);
}

/** One issue as one sentence, starting with the field's label. */
export function describeIssue(issue: Issue, labels: FieldLabels = {}): string {
  const path = issue.path.map(String).join(".");
  const field = labelOf(path, labels);
  const { label } = field;
  const show = (n: number | bigint) => (field.unit === "duration" ? formatDuration(Number(n)) : String(n));
  switch (issue.code) {
    case "invalid_type":
      if (missing(issue)) return `${label} is required`;
      return `${label} must be ${TYPE_NAMES[issue.expected] ?? article(issue.expected)}`;
    case "too_small": {
      const bound = show(issue.minimum);
      const strict = issue.inclusive === false;
      if (issue.origin === "string")
        return Number(issue.minimum) <= 1 && !strict ? `${label} must not be empty` : `${label} must be at least ${bound} characters long`;
      if (issue.origin === "array" || issue.origin === "set") return `${label} must have at least ${bound} item${bound === "1" ? "" : "s"}`;
      return `${label} must be ${strict ? "more than" : "at least"} ${bound}`;
    }
    case "too_big": {
      const bound = show(issue.maximum);
      const strict = issue.inclusive === false;
      if (issue.origin === "string") return `${label} must be at most ${bound} characters long`;
      if (issue.origin === "array" || issue.origin === "set") return `${label} must have at most ${bound} item${bound === "1" ? "" : "s"}`;
      return `${label} must be ${strict ? "less than" : "at most"} ${bound}`;
    }
    case "invalid_value":
      return `${label} must be ${issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`}`;
    case "unrecognized_keys":
      return `${path === "" ? "" : `${label}: `}unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.join(", ")} (check the spelling)`;
    case "not_multiple_of":
      return `${label} must be a multiple of ${show(Number(issue.divisor))}`;
    case "invalid_format":
      if (!ZOD_DEFAULT.test(issue.message)) return `${label}: ${issue.message}`;
      return `${label} must be ${article(issue.format === "url" ? "URL" : issue.format)}`;
    default:
      if (!ZOD_DEFAULT.test(issue.message)) return `${label}: ${issue.message}`;
      return `${label} is not valid (${issue.message.charAt(0).toLowerCase()}${issue.message.slice(1)})`;
  }
}

/** Every issue of an error, as sentences joined with "; ". */
export function describeIssues(error: { issues: readonly Issue[] }, labels: FieldLabels = {}): string {
  return error.issues.map((issue) => describeIssue(issue, labels)).join("; ");
}

/** The issues as data, for an error's `details`: `{ path, message }` each, in sentences. */
export function issueDetails(error: { issues: readonly Issue[] }, labels: FieldLabels = {}): Array<{ path: string; message: string }> {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join("."), message: describeIssue(issue, labels) }));
}
