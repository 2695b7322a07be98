/**
 * The scenario suite's "ask context" column without the lab: `coral ask`'s opening context,
 * built from a real store (opened read-only, as the lab reads it beside the coordinator), for a
 * question naming the service at fault, holds the expected finding and its evidence.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { askContextOf, openStore } from "@coral-mesh/coordinator/ask-testing";
import type { Finding } from "@coral-mesh/sdk-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { askContextHolds, askQuestion } from "../src/judge.js";

const NOW = Date.UTC(2027, 0, 15, 12);
const MIN = 60_000;

const finding = (over: Partial<Finding> & Pick<Finding, "id" | "kind" | "service" | "agent">): Finding => ({
  severity: "warning",
  state: "open",
  rootCause: { service: over.service, agent: over.agent, kind: over.kind },
  summary: `${over.service ?? over.agent} shows ${over.kind}`,
  confidence: 0.6,
  evidence: { events: [], metrics: [], edges: [], checks: [], notes: [] },
  recommendation: { action: "investigate", step: `look at ${over.service ?? over.agent}` },
  openedAt: NOW - 10 * MIN,
  updatedAt: NOW - 10 * MIN,
  resolvedAt: null,
  since: NOW - 11 * MIN,
  ...over,
});

/** Scenario-shaped findings: a cascade (web suffers, postgres is the root), a crash loop ranked above it, a full disk. */
const CASCADE = finding({
  id: "f-cascade",
  kind: "dependency-down",
  service: "web",
  agent: "host-a",
  rootCause: { service: "postgres", agent: "host-b", kind: "dependency-down" },
  evidence: {
    events: [{ id: 7, kind: "process.exited", time: NOW - 12 * MIN, agent: "host-b" }],
    metrics: [],
    edges: [{ from: "web", to: "postgres" }],
    checks: [],
    notes: ["postgres on host-b exited; web's calls to postgres:5432 fail since"],
  },
  recommendation: { action: "fix-dependency", step: "start postgres on host-b again" },
});
const CRASH = finding({ id: "f-crash", kind: "crash-loop", service: "api", agent: "host-a", severity: "critical", confidence: 0.95 });
const DISK = finding({
  id: "f-disk",
  kind: "host-pressure",
  service: null,
  agent: "host-c",
  evidence: {
    events: [],
    metrics: [
      { agent: "host-c", subject: "host", metric: "host.disk.used_bytes", since: NOW - 20 * MIN, until: NOW, summary: { used: 0.97 } },
    ],
    edges: [],
    checks: [],
    notes: ["/data on host-c is 97 % full"],
  },
  recommendation: { action: "free-resource", step: "free space on /data of host-c" },
});
/** Findings about other services enough to overflow the context, had the named ones not come first. */
const NOISE = Array.from({ length: 40 }, (_, i) =>
  finding({ id: `f-noise-${i}`, kind: "resource-spike", service: `svc-${i}`, agent: "host-a", severity: "critical", confidence: 0.99 }),
);

let dir: string;
let path: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "coral-scenario-ask-"));
  path = join(dir, "coral.db");
  const db = openStore(path);
  const sqlite = db.$client;
  const agent = sqlite.prepare("INSERT INTO agents (name, wireguard_key, mesh_ip, enrolled_at, addresses) VALUES (?, ?, ?, ?, '[]')");
  for (const [i, name] of ["host-a", "host-b", "host-c"].entries()) agent.run(name, `key-${name}`, `100.64.0.${i + 2}`, NOW - 86_400_000);
  const service = sqlite.prepare(
    "INSERT INTO services (agent_name, key, name, source, first_seen_at, last_seen_at, updated_at) VALUES (?, ?, ?, 'passive', ?, ?, ?)",
  );
  for (const [agentName, name] of [
    ["host-a", "web"],
    ["host-a", "api"],
    ["host-b", "postgres"],
    ...NOISE.map((f) => ["host-a", f.service as string]),
  ])
    service.run(agentName, `exe:/srv/${name}`, name, NOW - 3_600_000, NOW - MIN, NOW - MIN);
  const insert = sqlite.prepare(
    `INSERT INTO findings (id, identity, kind, severity, state, service, agent_name, root_cause, summary, confidence, evidence, recommendation, since, opened_at, updated_at, resolved_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  for (const f of [CASCADE, CRASH, DISK, ...NOISE]) {
    insert.run(
      f.id,
      `${f.kind}:${f.id}`,
      f.kind,
      f.severity,
      f.state,
      f.service,
      f.agent,
      JSON.stringify(f.rootCause),
      f.summary,
      f.confidence,
      JSON.stringify(f.evidence),
      JSON.stringify(f.recommendation),
      f.since,
      f.openedAt,
      f.updatedAt,
      f.resolvedAt,
    );
  }
  sqlite.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the ask context of a scenario", () => {
  it("holds a cascade's finding, first, for a question naming the root service", async () => {
    const context = await askContextOf(path, askQuestion({ service: "postgres", kind: "dependency-down" }), NOW);
    const verdict = askContextHolds(context, CASCADE);
    expect(verdict, context.text).toEqual({ holds: true, detail: expect.stringContaining("f-cascade is finding 1 of") });
    expect(context.text).toContain("postgres on host-b exited");
  });

  it("holds a host's finding for a question naming the host", async () => {
    const context = await askContextOf(path, askQuestion({ service: null, agent: "host-c", kind: "host-pressure" }), NOW);
    expect(askContextHolds(context, DISK).holds, context.text).toBe(true);
    expect(context.findingIds[0]).toBe("f-disk");
  });

  it("does not hold what the context left out, or showed without its evidence", async () => {
    const context = await askContextOf(path, "what is wrong?", NOW);
    // Forty more severe findings come first when nothing is named: the cascade does not fit.
    expect(askContextHolds(context, CASCADE)).toMatchObject({ holds: false, detail: expect.stringContaining("not among") });
    const bare = { text: "- [f-cascade] warning dependency-down on web", findingIds: ["f-cascade"] };
    expect(askContextHolds(bare, CASCADE)).toMatchObject({ holds: false, detail: expect.stringContaining("evidence") });
  });
});
