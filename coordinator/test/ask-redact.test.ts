import { describe, expect, it } from "vitest";
import { REDACTED, redactText, redactValue } from "../src/ask/redact.js";

describe("what leaves the coordinator for a model", () => {
  it("loses the secrets of command lines, environment and URLs, and keeps what says what they were", () => {
    const cases: Array<[string, string]> = [
      ["node server.js --db-password=hunter2 --port 8080", `node server.js --db-password=${REDACTED} --port 8080`],
      ["app --api-key 'abc def' --verbose", `app --api-key ${REDACTED} --verbose`],
      ["DB_PASSWORD=hunter2 PORT=80 node x", `DB_PASSWORD=${REDACTED} PORT=80 node x`],
      ['{"apiKey": "k-123", "port": 80}', `{"apiKey": ${REDACTED}, "port": 80}`],
      ["Authorization: Bearer abcdefgh12345678", `Authorization: ${REDACTED}`],
      ["curl -H 'x: bearer abcdefgh12345678' ", `curl -H 'x: bearer ${REDACTED}' `],
      ["connect postgres://app:s3cret@db:5432/shop failed", `connect postgres://app:${REDACTED}@db:5432/shop failed`],
      ["key sk-ant-api03-abcdefghijklmnopqrstuvwx in use", `key ${REDACTED} in use`],
      ["ghp_abcdefghijklmnopqrstuvwxyz0123 AKIAABCDEFGHIJKLMNOP", `${REDACTED} ${REDACTED}`],
      ["stripe sk_live_abcdefghijklmnop1234 and ASIAABCDEFGHIJKLMNOP", `stripe ${REDACTED} and ${REDACTED}`],
      ["hf_abcdefghijklmnopqrstuvwxyz0123456 npm_abcdefghijklmnopqrstuvwxyz0123456", `${REDACTED} ${REDACTED}`],
      ["Cookie: theme=dark; sessionid=abc123", `Cookie: ${REDACTED}`],
      ["sid=abc123 user=bob", `sid=${REDACTED} user=bob`],
      ["the password hunter2 was rotated", `the password ${REDACTED} was rotated`],
    ];
    for (const [input, expected] of cases) expect(redactText(input), input).toBe(expected);
  });

  it("leaves ordinary text alone", () => {
    for (const text of ["api-2 exited with code 1 after 3 s", "GET /v1/services 200", "node --max-old-space-size=512 app.js"]) {
      expect(redactText(text)).toBe(text);
    }
  });

  it("redacts values under secret-looking keys and every string inside a structure, without changing the input", () => {
    const input = { name: "api", config: { password: "x", url: "redis://:pw@cache:6379" }, argv: ["--token=abc123"] };
    const out = redactValue(input);
    expect(out).toEqual({
      name: "api",
      config: { password: REDACTED, url: `redis://:${REDACTED}@cache:6379` },
      argv: [`--token=${REDACTED}`],
    });
    expect(input.config.password).toBe("x");
  });
});
