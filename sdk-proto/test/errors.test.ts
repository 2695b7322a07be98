import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CoralError, docsFor, errorCodes, errorRegistry } from "../src/index.js";

const docs = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
/** Each code is documented under a heading of its own: `### \`code\``. */
const documented = [...docs.matchAll(/^### `([a-z0-9_]+)`$/gm)].map((m) => m[1]);

describe("the error code registry", () => {
  it("is sorted, so a new code lands in one obvious place", () => {
    expect(errorCodes).toEqual([...errorCodes].sort());
  });

  it("has a docs/errors.md section for every code, and no section for an unknown code", () => {
    expect(documented.filter((code) => !errorCodes.includes(code as never))).toEqual([]);
    expect(errorCodes.filter((code) => !documented.includes(code))).toEqual([]);
    expect(new Set(documented).size).toBe(documented.length);
  });

  it("documents each code with the HTTP status it answers with", () => {
    for (const code of errorCodes) {
      const section = docs.split(`### \`${code}\``)[1]?.split("\n### ")[0] ?? "";
      expect(section, code).toContain(`HTTP ${errorRegistry[code].status}`);
    }
  });

  it("gives every code an error status", () => {
    for (const code of errorCodes) expect(errorRegistry[code].status, code).toBeGreaterThanOrEqual(400);
  });

  it("turns a CoralError into the wire shape", () => {
    const error = new CoralError("rate_limited", "slow down", { headers: { "retry-after": "10" }, details: { limit: 1 } });
    expect(error.status).toBe(429);
    expect(error.toBody("req-1")).toEqual({
      code: "rate_limited",
      message: "slow down",
      docs: docsFor("rate_limited"),
      requestId: "req-1",
      details: { limit: 1 },
    });
  });
});
