/**
 * Findings as a user sees them: GET /v1/findings, /v1/findings/:id, /v1/summary and the status
 * counts over a real SQLite store seeded through drizzle; then `coral findings`, `coral findings
 * show`, `coral summary` and `coral status` against that API served on loopback.
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Finding,
  findingResponseSchema,
  findingsResponseSchema,
  type SummaryResponse,
  summaryResponseSchema,
} from "@coral-mesh/sdk-proto";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/index.js";
import { openStore, type Store } from "../src/store/db.js";
import { summary } from "../src/store/finding-queries.js";
import { events, findings } from "../src/store/schema.js";
import { findingRow, NOW, RANKED_ALL, RANKED_OPEN, seedFindings, seedMesh } from "./fixtures/findings-seed.js";
import { modelApi } from "./fixtures/model-api.js";

const HOUR = 3_600_000;

let dir: string;
let db: Store;
let app: Hono;
let emptyDb: Store;
let servers: Array<ReturnType<typeof serve>> = [];
let url: string;
let emptyUrl: string;

function listen(a: Hono): Promise<string> {
  return new Promise((ready) => {
    const server = serve({ fetch: a.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => ready(`http://127.0.0.1:${info.port}`));
    servers.push(server);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coral-findings-"));
  db = openStore(join(dir, "data", "coral.db"));
  seedMesh(db);
  seedFindings(db);
  app = await modelApi(db, dir, () => NOW);
  emptyDb = openStore(join(dir, "empty", "coral.db"));
  url = await listen(app);
  emptyUrl = await listen(await modelApi(emptyDb, join(dir, "e"), () => NOW));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  servers = [];
  db?.$client.close();
  emptyDb?.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await app.request(path);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function ids(path: string): Promise<string[]> {
  const { status, body } = await get(path);
  expect(status).toBe(200);
  return findingsResponseSchema.parse(body).findings.map((f) => f.id);
}

describe("GET /v1/findings", () => {
  it("lists open findings only, ranked: most severe, then most confident, then oldest", async () => {
    expect(await ids("/v1/findings")).toEqual(RANKED_OPEN);
  });

  it("with all=true, the resolved ones after the open ones", async () => {
    expect(await ids("/v1/findings?all=true")).toEqual(RANKED_ALL);
  });

  it("filters by service, matching the service showing it or the service its root cause lies in", async () => {
    expect(await ids("/v1/findings?service=postgres")).toEqual(["f2", "f3"]);
    expect(await ids("/v1/findings?service=api&all=true")).toEqual(["f1", "f4"]);
  });

  it("filters by agent, kind, and time updated", async () => {
    expect(await ids("/v1/findings?agent=db-1")).toEqual(["f2"]);
    expect(await ids("/v1/findings?kind=crash-loop")).toEqual(["f6", "f1"]);
    expect(await ids(`/v1/findings?since=${NOW - 9 * 60_000}`)).toEqual(["f2", "f3"]);
    expect(await ids(`/v1/findings?all=true&since=${NOW - 4 * HOUR}&kind=bad-deploy`)).toEqual(["f4"]);
  });

  it("takes at most `limit`, the best first", async () => {
    expect(await ids("/v1/findings?limit=2")).toEqual(["f2", "f3"]);
    expect(await ids("/v1/findings?all=true&limit=6")).toEqual(RANKED_ALL.slice(0, 6));
  });

  it("answers a finding whole: root cause, evidence, recommendation", async () => {
    const { status, body } = await get("/v1/findings/f3");
    expect(status).toBe(200);
    const { finding } = findingResponseSchema.parse(body);
    expect(finding).toMatchObject({
      id: "f3",
      state: "open",
      service: "web",
      rootCause: { service: "postgres", kind: "dependency-down", findingId: "f2" },
      recommendation: { action: "fix-dependency" },
      evidence: { checks: [{ name: "db", passing: false }], edges: [{ from: "web", to: "postgres" }] },
    });
  });

  it("refuses an unknown id with finding_not_found (404)", async () => {
    const { status, body } = await get("/v1/findings/nope");
    expect(status).toBe(404);
    expect(body).toMatchObject({ code: "finding_not_found", message: expect.stringContaining("nope"), docs: expect.any(String) });
  });

  it("refuses a bad query with invalid_query, naming the parameter", async () => {
    for (const query of ["kind=bogus", "limit=0", "limit=5000", "since=yesterday", "all=yes", "colour=red"]) {
      const { status, body } = await get(`/v1/findings?${query}`);
      expect(status, query).toBe(400);
      expect(body.code, query).toBe("invalid_query");
      expect(String(body.message), query).toMatch(new RegExp(query.split("=")[0] as string));
    }
  });
});

describe("GET /v1/status", () => {
  it("counts open findings by severity", async () => {
    const { body } = await get("/v1/status");
    expect(body.findings).toEqual({ critical: 1, warning: 3, info: 1 });
  });
});

describe("GET /v1/summary", () => {
  let s: SummaryResponse;
  beforeAll(async () => {
    const { status, body } = await get("/v1/summary");
    expect(status).toBe(200);
    s = summaryResponseSchema.parse(body);
  });

  it("covers the last day by default", () => {
    expect(s.until).toBe(NOW);
    expect(s.since).toBe(NOW - 24 * HOUR);
  });

  it("lists the deploys of the window with their versions, oldest first, and none from before", () => {
    expect(s.changes.deploys).toEqual([
      expect.objectContaining({ service: "api", agent: "web-1", from: "2.4.0", to: "2.4.1", time: NOW - 3 * HOUR - 60_000 }),
      expect.objectContaining({ service: "api", agent: "web-1", from: "2.4.1", to: "2.4.0" }),
      // Seen passively: the executables before and after.
      expect.objectContaining({ service: "worker", from: "/srv/worker-3.0", to: "/srv/worker-3.1" }),
    ]);
    expect(s.changes.deploys.every((d) => Number.isInteger(d.eventId))).toBe(true);
  });

  it("names new services and new dependencies, resolved to services (or externals)", () => {
    expect(s.changes.newServices).toEqual([{ service: "web", firstSeen: NOW - 2 * HOUR }]);
    expect(s.changes.newDependencies.map((d) => `${d.from}->${d.to}`)).toEqual(["web->postgres", "web->203.0.113.80:443"]);
  });

  it("lists what broke in the window, ranked, and what fixed what was resolved", () => {
    expect(s.incidents.map((i) => i.finding.id)).toEqual(["f2", "f3", "f6", "f1", "f5", "f4"]);
    const deploy = s.incidents.find((i) => i.finding.id === "f4");
    expect(deploy?.fixedBy).toBe(`service.deployed 2.4.0 at ${iso(NOW - 2 * HOUR - 10 * 60_000)}`);
    expect(s.incidents.filter((i) => i.finding.state === "open").every((i) => i.fixedBy === null)).toBe(true);
  });

  it("names services seen in the window with no warning or worse as quiet", () => {
    expect(s.quiet).toEqual(["cache"]);
  });

  it("counts open findings and measures SDK adoption, with what each passive-only service would gain", () => {
    expect(s.open).toEqual({ critical: 1, warning: 3, info: 1 });
    expect(s.sdk.adoption).toBeCloseTo(0.2);
    expect(s.sdk.sdkServices).toEqual(["web"]);
    const gain = Object.fromEntries(s.sdk.passiveOnly.map((p) => [p.service, p.gain]));
    expect(Object.keys(gain)).toEqual(["api", "cache", "postgres", "worker"]);
    expect(gain.postgres).toBe(
      "versions and deploys by version, health and named checks — today only restarts, resource use and listening ports are seen",
    );
    expect(gain.worker).toBe("health and named checks — today only restarts, resource use and versions are seen");
  });

  it("takes a window in milliseconds, and refuses one out of range", async () => {
    const week = summaryResponseSchema.parse((await get(`/v1/summary?window=${7 * 24 * HOUR}`)).body);
    expect(week.changes.deploys).toHaveLength(4);
    expect(week.incidents.map((i) => i.finding.id)).toContain("f7");
    for (const bad of ["window=10", "window=abc", "since=1"]) {
      const { status, body } = await get(`/v1/summary?${bad}`);
      expect(status, bad).toBe(400);
      expect(body.code, bad).toBe("invalid_query");
    }
  });
});

async function coral(target: string, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli([...argv, "--api", target], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe("coral findings", () => {
  it("prints one line per open finding, ranked, with where, summary, recommendation and age", async () => {
    const { code, out } = await coral(url, "findings");
    expect(code).toBe(0);
    const rows = out.split("\n").filter((l) => /^f\d/.test(l));
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(RANKED_OPEN);
    expect(rows[0]).toMatch(
      /^f2\s+critical\s+dependency-down\s+postgres@db-1\s+postgres stopped listening on :5432\s+→ restart postgres on db-1\s+\S+/,
    );
    expect(rows[4]).toMatch(/^f5\s+info\s+host-pressure\s+web-1\s/);
    expect(out).toContain("`coral findings show ID`");
  });

  it("with --all, adds the resolved ones and a state column; filters pass through", async () => {
    const all = await coral(url, "findings", "--all");
    expect(
      all.out
        .split("\n")
        .filter((l) => /^f\d/.test(l))
        .map((r) => r.split(/\s+/).slice(0, 3).join(" ")),
    ).toContain("f4 critical resolved");
    const byService = await coral(url, "findings", "--service", "postgres", "--kind", "health-failing");
    expect(byService.out.split("\n").filter((l) => /^f\d/.test(l))).toHaveLength(1);
  });

  it("says so when there is nothing to show", async () => {
    expect((await coral(emptyUrl, "findings")).out).toBe("No open findings.\n");
    expect((await coral(emptyUrl, "findings", "--all")).out).toBe("No findings at all.\n");
    expect((await coral(url, "findings", "--kind", "oom-kill")).out).toBe("No open findings match.\n");
  });

  it("prints JSON with --json", async () => {
    const { code, out } = await coral(url, "findings", "--json");
    expect(code).toBe(0);
    expect((JSON.parse(out) as Finding[]).map((f) => f.id)).toEqual(RANKED_OPEN);
  });

  it("refuses an unknown kind at the CLI, listing the kinds", async () => {
    const { code, err } = await coral(url, "findings", "--kind", "bogus");
    expect(code).toBe(1);
    expect(err).toMatch(/^coral: \[config_invalid\] --kind bogus is not a finding kind; the kinds are crash-loop, /);
  });
});

describe("coral findings show", () => {
  it("gives the root cause, confidence, recommendation and the evidence as a timeline", async () => {
    const { code, out } = await coral(url, "findings", "show", "f3");
    expect(code).toBe(0);
    const lines = out.split("\n");
    expect(lines[0]).toMatch(/^f3 {2}WARNING health-failing on web@web-1, open since /);
    expect(out).toContain("root cause:     dependency-down on postgres@db-1 (finding f2)");
    expect(out).toContain("confidence:     80%");
    expect(out).toContain("recommendation: fix-dependency: bring postgres back; web follows");
    const evidence = lines.slice(lines.indexOf("Evidence:") + 1).filter((l) => l !== "");
    expect(evidence).toEqual([
      `  ${iso(NOW - 8 * 60_000)}  check db failing`,
      `  ${iso(NOW - 7 * 60_000)}  event process.restarted on web-1 (#3)`,
      `  ${iso(NOW - 6 * 60_000)}  service.memory.rss_bytes of sdk:web@web-1 over 24m: first=100 last=180 slopePerHour=161`,
      "  depends:  web → postgres",
      "  note:     web calls postgres",
      "  note:     postgres is down, so web's failure is a consequence",
    ]);
  });

  it("leaves out the root cause when it is the finding's own service", async () => {
    const { out } = await coral(url, "findings", "show", "f4");
    expect(out).not.toContain("root cause:");
    expect(out).toMatch(/resolved at /);
    expect(out).toContain("(none recorded)");
  });

  it("answers an unknown id with its code, and JSON with --json", async () => {
    const missing = await coral(url, "findings", "show", "nope");
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^coral: \[finding_not_found\] No finding has id nope/);
    const json = await coral(url, "findings", "show", "f2", "--json");
    expect((JSON.parse(json.out) as Finding).rootCause.kind).toBe("dependency-down");
  });
});

describe("coral summary", () => {
  it("prints the digest: open findings, changes, incidents with their fixes, quiet services, SDK adoption", async () => {
    const { code, out } = await coral(url, "summary");
    expect(code).toBe(0);
    expect(out).toMatch(/^The last 24h \(/);
    expect(out).toContain("Open findings: 1 critical, 3 warning, 1 info");
    expect(out).toContain("deploy  api@web-1 2.4.0 → 2.4.1 at ");
    expect(out).toContain("new service  web, first seen ");
    expect(out).toContain("new dependency  web → postgres, first seen ");
    expect(out).toMatch(
      /critical bad-deploy on api@web-1: api crash-loops since its deploy of 2\.4\.1 \(resolved .*, after service\.deployed 2\.4\.0 at /,
    );
    expect(out).toContain("Quiet (no warning or worse): cache");
    expect(out).toContain("SDK adoption: 20% (1 of 5 services): web");
    expect(out).toContain("  cache would gain versions and deploys by version, health and named checks");
  });

  it("takes --since as a span, and prints JSON with --json", async () => {
    const { out } = await coral(url, "summary", "--since", "7d", "--json");
    const s = summaryResponseSchema.parse(JSON.parse(out));
    expect(s.until - s.since).toBe(7 * 24 * HOUR);
    const bad = await coral(url, "summary", "--since", "soon");
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/\[config_invalid\] --since soon/);
    // A time: the window reaches back to it (by this machine's clock), within the API's bounds.
    const since = await coral(url, "summary", "--since", new Date(Date.now() - 2 * HOUR).toISOString(), "--json");
    const window = summaryResponseSchema.parse(JSON.parse(since.out));
    expect(Math.abs(window.until - window.since - 2 * HOUR)).toBeLessThan(60_000);
  });
});

describe("coral status", () => {
  it("prints the open findings by severity, and none open when there are none", async () => {
    expect((await coral(url, "status")).out).toMatch(/^Findings {3}1 critical, 3 warning, 1 info; `coral findings` lists them$/m);
    expect((await coral(emptyUrl, "status")).out).toMatch(/^Findings {3}none open$/m);
  });
});

const iso = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z");

describe("what fixed a finding", () => {
  it("is found by the service's instances when the event names no service, and a restart counts when no deploy came", async () => {
    const store = openStore(join(dir, "fixes", "coral.db"));
    try {
      seedMesh(store);
      store
        .insert(findings)
        .values([
          findingRow({
            id: "leak",
            kind: "memory-leak",
            severity: "warning",
            state: "resolved",
            service: "cache",
            openedAt: NOW - HOUR,
            resolvedAt: NOW - 10 * 60_000,
          }),
          findingRow({
            id: "none",
            kind: "crash-loop",
            severity: "warning",
            state: "resolved",
            service: "postgres",
            agent: "db-1",
            openedAt: NOW - HOUR,
            resolvedAt: NOW - 10 * 60_000,
          }),
        ])
        .run();
      store
        .insert(events)
        .values({
          agentName: "web-1",
          kind: "process.restarted",
          time: NOW - 20 * 60_000,
          subjectKind: "service",
          subjectId: "exe:/srv/cache",
          subjectName: null,
          attributes: "{}",
        })
        .run();
      const s = summary(store, NOW, 24 * HOUR);
      const fixes = Object.fromEntries(s.incidents.map((i) => [i.finding.id, i.fixedBy]));
      expect(fixes).toEqual({ leak: `process.restarted at ${iso(NOW - 20 * 60_000)}`, none: null });
    } finally {
      store.$client.close();
    }
  });
});
