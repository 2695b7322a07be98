/**
 * The tools of `coral ask` and MCP, and the opening context, over a real SQLite store seeded
 * through the agent service's ingest: each tool's answer, its bound, its citations, and that
 * no secret planted on a command line or in an event ever leaves in one.
 */
import { rmSync } from "node:fs";
import { CoralError, citationSchema } from "@coral-mesh/sdk-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RESULT_LIMIT_BYTES, sizeOf } from "../src/ask/bound.js";
import { buildAskContext, CONTEXT_LIMIT_BYTES, namedIn } from "../src/ask/context.js";
import type { AskTool, ToolResult } from "../src/ask/tool.js";
import { callTool, createAskTools, toolInputSchema } from "../src/ask/tools.js";
import { type AskMesh, NOW, openAskMesh, SECRETS, seedManyEvents } from "./fixtures/ask-seed.js";

let mesh: AskMesh;
let tools: AskTool[];
const results: Array<{ name: string; result: ToolResult }> = [];

beforeAll(() => {
  mesh = openAskMesh();
  tools = createAskTools({ db: mesh.db, now: () => NOW });
});
afterAll(() => {
  mesh.db.$client.close();
  rmSync(mesh.dir, { recursive: true, force: true });
});

async function call(name: string, input: unknown = {}): Promise<{ content: Record<string, unknown>; result: ToolResult }> {
  const result = await callTool(tools, name, input);
  results.push({ name, result });
  expect(sizeOf(result.content), name).toBeLessThanOrEqual(RESULT_LIMIT_BYTES);
  for (const c of result.citations) expect(citationSchema.safeParse(c).success, JSON.stringify(c)).toBe(true);
  return { content: result.content as Record<string, unknown>, result };
}

async function refusal(name: string, input: unknown): Promise<CoralError> {
  const error = await callTool(tools, name, input).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(CoralError);
  return error as CoralError;
}

describe("the tools", () => {
  it("are named in snake_case, each with a description and an object schema for its input", () => {
    expect(tools.map((t) => t.name)).toEqual([
      "list_services",
      "get_service",
      "get_topology",
      "list_events",
      "get_metrics",
      "list_findings",
      "get_finding",
      "get_summary",
      "list_agents",
    ]);
    for (const t of tools) {
      expect(t.description.length, t.name).toBeGreaterThan(40);
      expect(toolInputSchema(t), t.name).toMatchObject({ type: "object" });
    }
  });

  it("list_services: each service with its health, instances, agents and dependencies", async () => {
    const { content, result } = await call("list_services");
    const services = content.services as Array<Record<string, unknown>>;
    expect(services.map((s) => s.name)).toEqual(["api", "postgres", "web", "worker"]);
    expect(services[0]).toMatchObject({
      name: "api",
      running: 1,
      instances: 1,
      agents: ["web-1"],
      ports: [8080],
      dependsOn: ["postgres:5432"],
    });
    expect(services[1]).toMatchObject({ name: "postgres", dependents: ["api"] });
    expect(result.citations).toContainEqual({ kind: "service", id: "api" });
    expect(result.truncated).toBeUndefined();
  });

  it("get_service: instances, dependencies and open findings; an unknown one is service_not_found, naming list_services", async () => {
    const { content, result } = await call("get_service", { name: "api" });
    expect(content).toMatchObject({
      name: "api",
      health: "unknown",
      source: "passive",
      dependsOn: [{ kind: "service", name: "postgres", port: 5432 }],
    });
    const instances = content.instances as Array<Record<string, unknown>>;
    expect(instances).toHaveLength(1);
    expect(instances[0]).toMatchObject({ agent: "web-1", running: true, executable: "/usr/bin/python3.12" });
    expect(content.openFindings).toEqual([expect.objectContaining({ id: "f-postgres" })]);
    expect(result.citations).toContainEqual({ kind: "finding", id: "f-postgres" });
    // What the SDK says of a service, and its named checks.
    const web = (await call("get_service", { name: "web" })).content;
    expect(web).toMatchObject({
      source: "sdk",
      versions: ["1.2.0"],
      sdk: [{ agent: "web-1", sdk: "node 0.1.0", runtime: "node 20.19.0", version: "1.2.0", build: "b42" }],
      checks: [{ name: "db", agent: "web-1", passing: false }],
      checkChanges: [expect.objectContaining({ check: "db", to: "fail" })],
    });
    const missing = await refusal("get_service", { name: "nope" });
    expect(missing.code).toBe("service_not_found");
    expect(missing.message).toContain("list_services");
  });

  it("get_topology: a service's neighbourhood, and the whole graph", async () => {
    const { content, result } = await call("get_topology", { service: "postgres" });
    expect(content.edges).toEqual([expect.objectContaining({ from: "api", to: "postgres", port: 5432, protocol: "tcp" })]);
    expect((content.nodes as Array<{ name: string }>).map((n) => n.name).sort()).toEqual(["api", "postgres"]);
    expect(result.citations).toContainEqual({ kind: "edge", id: "api->postgres:5432" });
    const whole = await call("get_topology");
    expect(whole.content.edges).toHaveLength(1);
    expect((await refusal("get_topology", { service: "nope" })).code).toBe("service_not_found");
  });

  it("list_events: newest first, filtered by service and kind and window, cited by id", async () => {
    const { content, result } = await call("list_events", { service: "api", kind: "process.restarted" });
    const events = content.events as Array<{ id: number; kind: string; time: string }>;
    expect(events.map((e) => e.id)).toEqual([...mesh.restartIds].reverse());
    expect(events[0]?.time).toBe("2027-01-15T10:30:00.000Z");
    expect(result.citations).toEqual(mesh.restartIds.map((id) => ({ kind: "event", id: String(id) })).reverse());
    const early = await call("list_events", { service: "api", kind: "process.restarted", until: "2027-01-15T10:25:00Z" });
    expect((early.content.events as unknown[]).length).toBe(1);
    const recent = await call("list_events", { kind: "process.restarted", since: "35m" });
    expect((recent.content.events as unknown[]).length).toBe(1);
  });

  it("get_metrics: a summary per instance — min, median, p95, max, last, the trend per hour, at most 24 buckets — and no raw points", async () => {
    const { content, result } = await call("get_metrics", { service: "api", metric: "service.memory.rss_bytes" });
    const [memory] = content.series as Array<Record<string, unknown>>;
    expect(memory).toMatchObject({
      agent: "web-1",
      metric: "service.memory.rss_bytes",
      count: 60,
      min: 100_000_000,
      max: 159_000_000,
      last: 159_000_000,
    });
    expect(memory?.median).toBeCloseTo(130_000_000, -6);
    // A megabyte a minute: 60 MB an hour.
    expect(memory?.trendPerHour).toBeCloseTo(60_000_000, -5);
    expect((memory?.buckets as unknown[] | undefined)?.length).toBeLessThanOrEqual(24);
    expect(JSON.stringify(content)).not.toContain('"points"');
    expect(result.citations).toContainEqual({ kind: "metric", id: "api:service.memory.rss_bytes" });
    // Without a metric: CPU and memory, and the names of all.
    const both = await call("get_metrics", { service: "api" });
    expect((both.content.series as Array<{ metric: string }>).map((s) => s.metric).sort()).toEqual([
      "service.cpu.cores",
      "service.memory.rss_bytes",
    ]);
    expect(both.content.metrics).toEqual(["service.cpu.cores", "service.memory.rss_bytes"]);
  });

  it("list_findings: ranked, filtered by state, service and severity", async () => {
    const ids = async (input: unknown) => ((await call("list_findings", input)).content.findings as Array<{ id: string }>).map((f) => f.id);
    expect(await ids({})).toEqual(["f-worker", "f-postgres"]);
    expect(await ids({ state: "all" })).toEqual(["f-worker", "f-postgres", "f-old"]);
    expect(await ids({ state: "resolved" })).toEqual(["f-old"]);
    expect(await ids({ service: "postgres" })).toEqual(["f-postgres"]);
    expect(await ids({ severity: "warning", state: "all" })).toEqual(["f-old"]);
  });

  it("get_finding: the finding with its evidence, and the evidence events' details", async () => {
    const { content, result } = await call("get_finding", { id: "f-postgres" });
    expect(content).toMatchObject({
      id: "f-postgres",
      rootCause: { service: "postgres", kind: "dependency-down" },
      recommendation: { action: "fix-dependency", step: "bring postgres on db-1 back" },
      evidence: {
        edges: [{ from: "api", to: "postgres" }],
        notes: expect.arrayContaining(["postgres on db-1 went silent 10 minutes ago"]),
      },
    });
    expect((content.evidenceEvents as Array<{ id: number; kind: string }>).map((e) => e.id).sort()).toEqual(mesh.restartIds);
    expect(result.citations).toEqual(
      expect.arrayContaining([
        { kind: "finding", id: "f-postgres" },
        { kind: "edge", id: "api->postgres" },
        ...mesh.restartIds.map((id) => ({ kind: "event", id: String(id) })),
      ]),
    );
    expect((await refusal("get_finding", { id: "nope" })).code).toBe("finding_not_found");
  });

  it("get_summary and list_agents", async () => {
    const s = await call("get_summary", { window: "24h" });
    expect(s.content.open).toEqual({ critical: 2, warning: 0, info: 0 });
    expect((s.content.incidents as Array<{ id: string }>).map((i) => i.id)).toEqual(["f-worker", "f-postgres", "f-old"]);
    const a = await call("list_agents");
    expect(a.content.agents).toEqual([
      expect.objectContaining({ name: "db-1", status: "offline" }),
      expect.objectContaining({ name: "web-1", status: "healthy" }),
    ]);
    expect(a.result.citations).toEqual([
      { kind: "agent", id: "db-1" },
      { kind: "agent", id: "web-1" },
    ]);
  });

  it("refuse an unknown tool and input they do not take with invalid_tool_input, saying what to do", async () => {
    const unknown = await refusal("drop_tables", {});
    expect(unknown.code).toBe("invalid_tool_input");
    expect(unknown.status).toBe(400);
    expect(unknown.message).toContain("list_services");
    for (const [name, input, field] of [
      ["get_service", {}, "name"],
      ["get_service", { name: 3 }, "name"],
      ["list_events", { limit: 500 }, "limit"],
      ["list_events", { colour: "red" }, "colour"],
      ["list_events", { since: "yesterday-ish" }, "since"],
      ["list_events", { cursor: "abc" }, "cursor"],
      ["list_findings", { severity: "dire" }, "severity"],
      ["get_summary", { window: "forever" }, "window"],
      ["get_topology", { depth: 9 }, "depth"],
    ] as const) {
      const error = await refusal(name, input);
      expect(error.code, `${name} ${JSON.stringify(input)}`).toBe("invalid_tool_input");
      expect(error.message, `${name} ${JSON.stringify(input)}`).toContain(field);
    }
  });
});

describe("the bound", () => {
  it("cuts a page of long events to 8 KB, says so, and gives a cursor that pages on without repeats", async () => {
    seedManyEvents(mesh, 120);
    const seen = new Set<number>();
    let cursor: string | undefined;
    let pages = 0;
    let cut = 0;
    do {
      const { content, result } = await call("list_events", {
        service: "api",
        kind: "service.log",
        limit: 50,
        ...(cursor ? { cursor } : {}),
      });
      const events = content.events as Array<{ id: number }>;
      if (result.truncated) {
        cut++;
        expect(content.truncated).toBe(true);
        expect(events.length).toBeLessThan(50);
      }
      for (const e of events) {
        expect(seen.has(e.id)).toBe(false);
        seen.add(e.id);
      }
      cursor = (content.cursor as string | null) ?? undefined;
      pages++;
    } while (cursor && pages < 20);
    expect(cut).toBeGreaterThan(0);
    expect(seen.size).toBe(121); // the 120 and the seed's own log line
  });
});

describe("secrets", () => {
  it("never leave in a tool result, whatever tool, nor in the context", async () => {
    for (const [name, input] of [
      ["list_services", {}],
      ["get_service", { name: "api" }],
      ["get_topology", {}],
      ["list_events", { service: "api" }],
      ["list_events", { service: "api", until: "2027-01-15T10:35:00Z" }],
      ["list_events", { kind: "service.log", limit: 50 }],
      ["get_metrics", { service: "api" }],
      ["get_finding", { id: "f-postgres" }],
      ["list_agents", {}],
    ] as const)
      await call(name, input);
    // The planted values are in the store: what is shown comes from there.
    const stored =
      JSON.stringify(mesh.db.$client.prepare("SELECT * FROM events").all()) +
      JSON.stringify(mesh.db.$client.prepare("SELECT * FROM services").all());
    for (const secret of SECRETS) expect(stored).toContain(secret);
    const logLine = results
      .flatMap((r) => (r.name === "list_events" ? ((r.result.content as { events: Array<{ id: number }> }).events ?? []) : []))
      .find((e) => e.id === mesh.logEventId);
    expect(JSON.stringify(logLine)).toContain("could not connect to postgres://app:[REDACTED]@198.51.100.20");
    expect(JSON.stringify(results.find((r) => r.name === "get_service")?.result.content)).toContain("--password=[REDACTED]");
    for (const { name, result } of results) {
      for (const secret of SECRETS) expect(JSON.stringify(result), name).not.toContain(secret);
    }
    const context = await buildAskContext({ db: mesh.db, now: () => NOW }, "why does api keep restarting?");
    for (const secret of SECRETS) expect(JSON.stringify(context)).not.toContain(secret);
  });
});

describe("the opening context", () => {
  it("puts the findings about the service the question names first, with root cause, evidence and recommendation", async () => {
    const context = await buildAskContext({ db: mesh.db, now: () => NOW }, "Why is API restarting?");
    expect(context.findingIds).toEqual(["f-postgres", "f-old", "f-worker"]);
    expect(context.text).toContain("The question names service api.");
    expect(context.text).toContain("[f-postgres] critical dependency-down on api");
    expect(context.text).toContain("Root cause: postgres (dependency-down).");
    expect(context.text).toContain("postgres on db-1 went silent 10 minutes ago");
    expect(context.text).toContain("Recommendation: fix-dependency — bring postgres on db-1 back");
    expect(context.text).toMatch(/- api \(on web-1\) calls postgres:5432; called by nothing seen\./);
    expect(context.text).toContain("Agents: 2 (1 healthy, 1 offline: db-1).");
    expect(context.text).toContain("Open findings: 2 critical, 0 warning, 0 info.");
    expect(context.citations).toEqual(
      expect.arrayContaining([
        { kind: "finding", id: "f-postgres" },
        { kind: "service", id: "api" },
      ]),
    );
    expect(Buffer.byteLength(context.text)).toBeLessThanOrEqual(CONTEXT_LIMIT_BYTES);
  });

  it("without a name, ranks as coral findings does: open first, most severe, most confident", async () => {
    const context = await buildAskContext({ db: mesh.db, now: () => NOW }, "what is wrong?");
    expect(context.findingIds).toEqual(["f-worker", "f-postgres", "f-old"]);
    const agent = await buildAskContext({ db: mesh.db, now: () => NOW }, "is db-1 ok?");
    expect(agent.text).toContain("The question names agent db-1.");
    expect(agent.findingIds[0]).toBe("f-postgres");
  });

  it("matches names as whole words, case-insensitively", () => {
    expect(namedIn("Is the API down? and api-gateway, rapid, db-1's disk", ["api", "api-gateway", "db-1", "pi", "gateway"])).toEqual([
      "api",
      "api-gateway",
      "db-1",
    ]);
    expect(namedIn("look at api.", ["api"])).toEqual(["api"]);
  });
});
