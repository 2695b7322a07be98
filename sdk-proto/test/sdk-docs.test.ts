/** docs/sdk.md names the statuses the SDK sends exactly as the protocol does. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");
const page = read("../../docs/sdk.md");

/** `NAME = n;` lines of one enum in a .proto file. */
function enumValues(proto: string, name: string): Array<[string, number]> {
  const body = new RegExp(`enum ${name} \\{([^}]*)\\}`).exec(proto)?.[1] ?? "";
  return [...body.matchAll(/^\s*([A-Z_]+) = (\d+);/gm)].map((m) => [m[1] as string, Number(m[2])]);
}

describe("docs/sdk.md against the proto", () => {
  it("lists every CheckStatus with its value, and no other", () => {
    const proto = enumValues(read("../proto/coral/sdk/v1/sdk.proto"), "CheckStatus");
    expect(proto.length).toBeGreaterThan(3);
    const documented = [...page.matchAll(/^\| `(CHECK_STATUS_[A-Z_]+)`\s*\| (\d+)\s*\|/gm)].map((m) => [m[1], Number(m[2])]);
    expect(documented).toEqual(proto);
    const named = new Set([...page.matchAll(/\b(CHECK_STATUS_[A-Z_]+)\b/g)].map((m) => m[1]));
    expect([...named].sort()).toEqual(proto.map(([n]) => n).sort());
  });

  it("names every health ServingStatus with its value", () => {
    const proto = enumValues(read("../proto/grpc/health/v1/health.proto"), "ServingStatus");
    expect(proto.length).toBe(4);
    for (const [name, value] of proto) expect(page, name).toContain(`\`${name}\` (${value}`);
  });
});
