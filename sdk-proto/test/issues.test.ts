import { describe, expect, it } from "vitest";
import * as z from "zod";
import { describeIssues, formatDuration, issueDetails } from "../src/index.js";

const schema = z.strictObject({
  ttlMs: z
    .number()
    .int()
    .min(1_000)
    .max(365 * 86_400_000),
  uses: z.number().int().min(1).max(10_000),
  name: z.string().min(1).max(64).optional(),
  mode: z.enum(["auto", "off"]).optional(),
  url: z.url().optional(),
  ports: z.array(z.number()).min(1).optional(),
  match: z
    .string()
    .regex(/^[a-z]+$/, "a name is lowercase letters")
    .optional(),
});
const labels = {
  ttlMs: { label: "the TTL", unit: "duration" as const },
  uses: "the number of uses",
  name: "the name",
};
const say = (value: unknown) => {
  const parsed = schema.safeParse(value);
  if (parsed.success) throw new Error("expected a failure");
  return describeIssues(parsed.error, labels);
};

describe("zod issues as sentences", () => {
  it("says bounds in the field's own words and units", () => {
    expect(say({ ttlMs: 0, uses: 1 })).toBe("the TTL must be at least 1s");
    expect(say({ ttlMs: 400 * 86_400_000, uses: 1 })).toBe("the TTL must be at most 365d");
    expect(say({ ttlMs: 1_000, uses: 0 })).toBe("the number of uses must be at least 1");
    expect(say({ ttlMs: 1_000, uses: 1, name: "" })).toBe("the name must not be empty");
    expect(say({ ttlMs: 1_000, uses: 1, name: "x".repeat(65) })).toBe("the name must be at most 64 characters long");
    expect(say({ ttlMs: 1_000, uses: 1, ports: [] })).toBe("ports must have at least 1 item");
  });

  it("says what is missing, of the wrong type, not one of the choices, unknown or badly formed", () => {
    expect(say({ uses: 1 })).toBe("the TTL is required");
    expect(say({ ttlMs: 1.5, uses: "2" })).toBe("the TTL must be a whole number; the number of uses must be a number");
    expect(say({ ttlMs: 1_000, uses: 1, mode: "on" })).toBe('mode must be one of "auto", "off"');
    expect(say({ ttlMs: 1_000, uses: 1, colour: "red" })).toBe("unknown field colour (check the spelling)");
    expect(say({ ttlMs: 1_000, uses: 1, url: "nope" })).toBe("url must be a URL");
    expect(say({ ttlMs: 1_000, uses: 1, match: "A" })).toBe("match: a name is lowercase letters");
  });

  it("never passes zod's own wording through", () => {
    const parsed = schema.safeParse({ ttlMs: -1, uses: 1e9, name: 3, mode: 1, ports: "x", extra: 1 });
    const details = issueDetails(parsed.error as z.ZodError);
    expect(details.length).toBeGreaterThan(4);
    for (const { message } of details) expect(message).not.toMatch(/Too small|Too big|Invalid input|expected number to be|>=|<=/);
  });

  it("shows durations in the largest unit that fits", () => {
    expect([1_000, 90_000, 3_600_000, 86_400_000, 1_500].map(formatDuration)).toEqual(["1s", "90s", "1h", "1d", "1500ms"]);
  });
});
