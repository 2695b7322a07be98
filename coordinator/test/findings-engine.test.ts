/**
 * The findings engine on signals fed as the bus brings them, with an injected clock: what it
 * concludes, what it leaves alone, and how findings open, hold and resolve.
 */
import { findingSchema } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { Engine, type FindingChange, RESOLVE_AFTER_MS } from "../src/analysis/engine.js";
import type { InputEvent, InputSample } from "../src/analysis/state.js";

const T0 = Date.UTC(2027, 0, 15, 10);
const INTERVAL = 2_000;
const MIB = 1024 * 1024;

/** A lab of agents reporting every INTERVAL to an engine, with the clock in the test's hands. */
class Feed {
  readonly engine = new Engine({ newId: () => `f${++this.ids}` });
  now = T0;
  private ids = 0;
  private eventId = 0;
  readonly changes: FindingChange[] = [];
  private pending = new Map<string, { events: InputEvent[]; samples: InputSample[] }>();

  constructor(agents: string[]) {
    for (const name of agents)
      this.engine.state.applyAgent({ name, health: "healthy", lastHeartbeat: T0, plugins: [], clockOffsetMs: 0 }, T0);
  }

  private batch(agent: string) {
    let b = this.pending.get(agent);
    if (!b) {
      b = { events: [], samples: [] };
      this.pending.set(agent, b);
    }
    return b;
  }

  event(
    agent: string,
    kind: string,
    subject: { kind: string; id: string; name: string },
    attributes: Record<string, string> = {},
    source = "passive",
  ) {
    const e = { id: ++this.eventId, agent, kind, time: this.now, subject, attributes, source };
    this.batch(agent).events.push(e);
    return e;
  }

  sample(agent: string, subjectId: string, name: string, value: number, labels = "{}", subjectKind = "service") {
    this.batch(agent).samples.push({ subjectKind, subjectId, name, labels, time: this.now, value });
  }

  host(agent: string, name: string, value: number, labels = "{}") {
    this.sample(agent, "host", name, value, labels, "host");
  }

  /** What each agent reports at this collect, then the clock moves one interval and the engine evaluates. */
  tick(collect?: (feed: Feed) => void) {
    collect?.(this);
    for (const [agent, b] of this.pending) this.engine.state.applyBatch(agent, this.now, b.events, b.samples);
    this.pending.clear();
    for (const name of this.engine.state.agents.keys())
      this.engine.state.applyAgent(
        {
          name,
          health: this.offline.has(name) ? "offline" : "healthy",
          lastHeartbeat: this.now,
          plugins: this.plugins.get(name) ?? [],
          clockOffsetMs: 0,
        },
        this.now,
      );
    const changes = this.engine.evaluate(this.now);
    // Whatever the engine says keeps the API's contract.
    for (const c of changes) findingSchema.parse(c.finding);
    this.changes.push(...changes);
    this.now += INTERVAL;
  }

  readonly offline = new Set<string>();
  readonly plugins = new Map<string, Array<{ name: string; state: string; error?: string }>>();

  run(ticks: number, collect?: (feed: Feed, i: number) => void) {
    for (let i = 0; i < ticks; i++) this.tick((f) => collect?.(f, i));
  }

  open() {
    return this.engine
      .openFindings()
      .sort((a, b) => rank(a.severity) - rank(b.severity) || b.confidence - a.confidence || a.openedAt - b.openedAt);
  }
}
const rank = (s: string) => ["critical", "warning", "info"].indexOf(s);
const svc = (id: string, name: string) => ({ kind: "service", id, name });
const proc = (pid: number, name: string) => ({ kind: "process", id: `pid:${pid}:1`, name });

/** A service reporting its usual metrics. */
function alive(f: Feed, agent: string, key: string, { cpu = 0.05, rss = 80 * MIB, processes = 1 } = {}) {
  f.sample(agent, key, "service.cpu.cores", cpu);
  f.sample(agent, key, "service.memory.rss_bytes", rss);
  f.sample(agent, key, "service.processes", processes);
}
function hostMetrics(f: Feed, agent: string, { cpu = 0.1, cores = 2 } = {}) {
  f.host(agent, "host.cpu.utilization", cpu);
  f.host(agent, "host.cpu.cores", cores);
  f.host(agent, "host.memory.total_bytes", 8192 * MIB);
  f.host(agent, "host.memory.available_bytes", 6000 * MIB);
}
/** A crash under a supervisor, as passive reports it: the only process replaced within an interval. */
function crash(f: Feed, agent: string, key: string, name: string, pid: number) {
  f.event(agent, "process.exited", proc(pid, name), { pid: String(pid), service: name, serviceKey: key, remaining: "1" });
  f.event(agent, "process.started", proc(pid + 1, name), { pid: String(pid + 1), service: name, serviceKey: key });
  f.event(agent, "process.restarted", svc(key, name), { oldPid: String(pid), newPid: String(pid + 1), survivors: "0" });
}

describe("the findings engine", () => {
  it("names a deploy that crash-loops as the root, with both versions and the rollback (SDK)", () => {
    const f = new Feed(["a"]);
    const key = "script:node /srv/api/server.js";
    f.tick((f) => f.event("a", "service.observed", svc(key, "api"), { source: "sdk", version: "2.4.0" }, "sdk"));
    f.run(30, (f) => {
      alive(f, "a", key);
      hostMetrics(f, "a");
    });
    f.tick((f) =>
      f.event("a", "service.deployed", svc(key, "api"), { source: "sdk", from: "2.4.0", to: "2.4.1", version: "2.4.1" }, "sdk"),
    );
    f.run(10, (f, i) => {
      alive(f, "a", key);
      hostMetrics(f, "a");
      if (i % 2 === 1) crash(f, "a", key, "api", 1000 + i * 2);
    });
    const top = f.open()[0];
    expect(top).toMatchObject({
      kind: "bad-deploy",
      severity: "critical",
      service: "api",
      agent: "a",
      rootCause: { service: "api", kind: "bad-deploy" },
    });
    expect(top?.recommendation).toMatchObject({ action: "rollback", target: { version: "2.4.0" } });
    expect(top?.summary).toContain("2.4.1");
    expect(top?.confidence).toBeGreaterThanOrEqual(0.85);
    // The crash loop it caused points at it.
    const loop = f.open().find((x) => x.kind === "crash-loop");
    expect(loop?.rootCause).toMatchObject({ kind: "bad-deploy", findingId: top?.id });
    // Opened once, however many evaluations saw it.
    expect(f.changes.filter((c) => c.change === "opened" && c.finding.kind === "bad-deploy")).toHaveLength(1);
  });

  it("scores the same fault lower seen passively, and still names the deploy", () => {
    const f = new Feed(["a"]);
    const key = "exe:/usr/local/bin/api";
    f.tick((f) => f.event("a", "service.observed", svc(key, "api"), { source: "passive", exe: "/usr/local/bin/api" }));
    f.run(30, (f) => alive(f, "a", key));
    f.tick((f) => {
      crash(f, "a", key, "api", 500);
      f.event("a", "service.deployed", svc(key, "api"), { exe: "/usr/local/bin/api" });
    });
    f.run(10, (f, i) => {
      alive(f, "a", key);
      if (i % 2 === 1) crash(f, "a", key, "api", 600 + i * 2);
    });
    const top = f.open()[0];
    expect(top).toMatchObject({ kind: "bad-deploy", service: "api" });
    expect(top?.confidence).toBeGreaterThanOrEqual(0.55);
    expect(top?.confidence).toBeLessThan(0.75);
  });

  it("names a deploy after which memory grows as it did not before", () => {
    const f = new Feed(["a"]);
    const key = "script:node /srv/cart.js";
    f.tick((f) => f.event("a", "service.observed", svc(key, "cart"), { source: "sdk", version: "7.1" }, "sdk"));
    f.run(60, (f) => alive(f, "a", key, { rss: 200 * MIB }));
    f.tick((f) => {
      crash(f, "a", key, "cart", 40);
      f.event("a", "service.deployed", svc(key, "cart"), { source: "sdk", from: "7.1", to: "7.2", version: "7.2" }, "sdk");
    });
    f.run(90, (f, i) => alive(f, "a", key, { rss: (120 + i * 1.5) * MIB }));
    const deploy = f.open().find((x) => x.kind === "bad-deploy");
    expect(deploy?.summary).toMatch(/memory grows \d+ MiB\/min since/);
    expect(deploy?.recommendation.target).toMatchObject({ version: "7.1" });
    expect(f.open().find((x) => x.kind === "memory-leak")?.rootCause).toMatchObject({ kind: "bad-deploy", findingId: deploy?.id });
  });

  it("names the exit status the ebpf collector saw, joined to the passive collector's exit by pid", () => {
    const f = new Feed(["a"]);
    const key = "exe:/opt/queue";
    f.run(10, (f, i) => {
      alive(f, "a", key);
      if (i % 3 === 2) {
        f.event(
          "a",
          "process.exit",
          { kind: "process", id: `pid:${700 + i}`, name: "queue" },
          { pid: String(700 + i), exitCode: "3", source: "ebpf" },
          "ebpf",
        );
        crash(f, "a", key, "queue", 700 + i);
      }
    });
    expect(f.open()[0]?.summary).toMatch(/^queue on a crash-loops: 3 restarts in \d+ min \(exit 3\)$/);
  });

  it("opens nothing for a deploy that goes fine, a pool replacing workers, or a job on a schedule", () => {
    const f = new Feed(["a"]);
    const web = "script:node /srv/web.js";
    const pool = "exe:/usr/bin/gunicorn";
    const job = "script:sh /etc/cron.hourly/report";
    f.tick((f) => {
      f.event("a", "service.observed", svc(web, "web"), { source: "sdk", version: "1.0" }, "sdk");
      f.event("a", "service.observed", svc(pool, "pool"), {});
    });
    let pid = 100;
    f.run(120, (f, i) => {
      alive(f, "a", web, { rss: (80 + Math.min(i, 40)) * MIB });
      alive(f, "a", pool, { processes: 5 });
      hostMetrics(f, "a");
      if (i === 20) {
        crash(f, "a", web, "web", 50);
        f.event("a", "service.deployed", svc(web, "web"), { source: "sdk", from: "1.0", to: "1.1", version: "1.1" }, "sdk");
      }
      // A worker of the pool replaced every few collects: the master survives.
      if (i % 3 === 0) {
        f.event("a", "process.exited", proc(pid, "pool"), { pid: String(pid), service: "pool", serviceKey: pool, remaining: "4" });
        f.event("a", "process.started", proc(pid + 1, "pool"), { pid: String(pid + 1), service: "pool", serviceKey: pool });
        f.event("a", "process.restarted", svc(pool, "pool"), { oldPid: String(pid), newPid: String(pid + 1), survivors: "4" });
        pid += 2;
      }
      // A job every 30 collects (a minute), busy while it runs, then gone until the next.
      const phase = i % 30;
      if (phase === 0)
        f.event("a", "process.started", proc(9000 + i, "report"), { pid: String(9000 + i), service: "report", serviceKey: job });
      if (phase < 8) alive(f, "a", job, { cpu: 1.95 });
      if (phase === 8)
        f.event("a", "process.exited", proc(9000 + i - 8, "report"), {
          pid: String(9000 + i - 8),
          service: "report",
          serviceKey: job,
          remaining: "0",
        });
    });
    const serious = f.changes.filter((c) => c.change === "opened" && c.finding.severity !== "info");
    expect(serious.map((c) => c.finding.summary)).toEqual([]);
  });

  it("finds a slow leak, with the time to the limit, and not a warm-up that levels off", () => {
    const f = new Feed(["a"]);
    const leak = "exe:/opt/orders";
    const warm = "exe:/opt/cache";
    f.run(150, (f, i) => {
      alive(f, "a", leak, { rss: (100 + i * 2 + (i % 3)) * MIB });
      alive(f, "a", warm, { rss: (100 + Math.min(i, 30) * 4) * MIB });
      f.sample("a", leak, "service.memory.limit_bytes", 1024 * MIB);
      hostMetrics(f, "a");
    });
    const found = f.open().filter((x) => x.kind === "memory-leak");
    expect(found.map((x) => x.service)).toEqual(["exe:/opt/orders"]);
    expect(found[0]?.summary).toMatch(/reaches its memory limit \(1\.0 GiB\) in \d+ min/);
    expect(found[0]?.severity).toBe("critical");
  });

  it("finds a leak that starts after long steady use once it has grown for two minutes", () => {
    const f = new Feed(["a"]);
    const key = "exe:/opt/search";
    f.run(300, (f) => alive(f, "a", key, { rss: 300 * MIB }));
    const began = f.now;
    let foundAt: number | undefined;
    f.run(120, (f, i) => {
      alive(f, "a", key, { rss: (300 + i * 1.2) * MIB });
      if (foundAt === undefined && f.engine.openFindings().some((x) => x.kind === "memory-leak")) foundAt = f.now;
    });
    expect(foundAt).toBeDefined();
    // Two minutes of growth and a collect or two: not ten minutes of it.
    expect((foundAt as number) - began).toBeLessThanOrEqual(130_000);
  });

  it("says a service uses far more CPU than its own normal, as info until it lasts", () => {
    const f = new Feed(["a"]);
    const key = "exe:/opt/render";
    f.run(100, (f, i) => alive(f, "a", key, { cpu: 0.05 + (i % 5) * 0.005 }));
    f.run(20, (f) => alive(f, "a", key, { cpu: 0.8 }));
    const spike = f.open().find((x) => x.kind === "resource-spike");
    expect(spike).toMatchObject({ severity: "info", service: key });
    expect(spike?.summary).toMatch(/uses 0\.80 cores of CPU, \d+\.\d× its usual 0\.06 cores/);
  });

  it("names the service using most of a host whose CPUs are full, and points the host's pressure at it", () => {
    const f = new Feed(["a"]);
    const busy = "exe:/opt/index";
    const quiet = "exe:/opt/web";
    f.run(60, (f) => {
      alive(f, "a", busy, { cpu: 0.6 });
      alive(f, "a", quiet, { cpu: 0.1 });
      hostMetrics(f, "a", { cpu: 0.98 });
    });
    const open = f.open();
    expect(open[0]).toMatchObject({ kind: "cpu-saturation", service: busy, severity: "warning" });
    expect(open.find((x) => x.kind === "host-pressure")?.rootCause).toMatchObject({ service: busy, kind: "cpu-saturation" });
    expect(open.filter((x) => x.kind === "cpu-saturation")).toHaveLength(1);
  });

  it("puts a cascade on the dependency that stopped listening", () => {
    const f = new Feed(["a", "b"]);
    const db = "exe:/usr/sbin/db";
    const callers = [
      ["api", "script:node /srv/api.js"],
      ["billing", "script:node /srv/billing.js"],
    ] as const;
    f.tick((f) => {
      f.event("b", "service.observed", svc(db, "db"), { listening: "0.0.0.0:5432" });
      for (const [name, key] of callers) f.event("a", "service.observed", svc(key, name), {});
    });
    f.engine.state.applyDependencies(
      callers.map(([name]) => ({ from: name, to: "db", lastSeen: f.now })),
      f.now,
    );
    f.run(20, (f) => {
      alive(f, "b", db);
      for (const [, key] of callers) alive(f, "a", key);
    });
    f.tick((f) => f.event("b", "port.closed", svc(db, "db"), { address: "0.0.0.0:5432" }));
    f.run(12, (f, i) => {
      alive(f, "b", db);
      for (const [name, key] of callers) {
        alive(f, "a", key);
        if (i % 3 === 1) crash(f, "a", key, name, 2000 + i * 10 + name.length);
      }
    });
    const open = f.open();
    expect(open[0]?.rootCause).toMatchObject({ service: "db", kind: "dependency-down" });
    const down = open.find((x) => x.kind === "dependency-down");
    expect(down).toMatchObject({ service: "db", severity: "critical" });
    expect(down?.summary).toContain("api and billing");
    for (const loop of open.filter((x) => x.kind === "crash-loop"))
      expect(loop.rootCause).toMatchObject({ service: "db", kind: "dependency-down", findingId: down?.id });
  });

  it("resolves a finding once its condition has cleared for a while, and opens a new one if it comes back", () => {
    const f = new Feed(["a"]);
    f.plugins.set("a", [{ name: "ebpf", state: "failed", error: "bpftrace is not installed (Debian/Ubuntu: apt-get install bpftrace)" }]);
    f.run(5);
    const opened = f.changes.filter((c) => c.change === "opened");
    expect(opened.map((c) => [c.finding.kind, c.finding.recommendation.step])).toEqual([
      ["plugin-failed", "on a: bpftrace is not installed (Debian/Ubuntu: apt-get install bpftrace)"],
    ]);
    f.plugins.set("a", [{ name: "ebpf", state: "running" }]);
    f.run(Math.ceil(RESOLVE_AFTER_MS / INTERVAL) - 2);
    expect(f.changes.filter((c) => c.change === "resolved")).toEqual([]);
    f.run(4);
    expect(f.changes.filter((c) => c.change === "resolved").map((c) => c.finding.id)).toEqual([opened[0]?.finding.id]);
    f.plugins.set("a", [{ name: "ebpf", state: "failed", error: "again" }]);
    f.run(2);
    const again = f.changes.filter((c) => c.change === "opened");
    expect(again).toHaveLength(2);
    expect(again[1]?.finding.id).not.toBe(opened[0]?.finding.id);
  });

  it("looks again at an instance that went silent, and forgets what a removed agent's instances concluded", () => {
    const f = new Feed(["a", "b"]);
    const loop = (feed: Feed, i: number, agent: string, key: string) => {
      alive(feed, agent, key);
      if (i % 2 === 1) crash(feed, agent, key, "api", 1000 + i * 2);
    };
    f.run(12, (feed, i) => {
      loop(feed, i, "a", "exe:/srv/api-a");
      loop(feed, i, "b", "exe:/srv/api-b");
    });
    const opened = f.changes.filter((c) => c.change === "opened" && c.finding.kind === "crash-loop");
    expect(opened.map((c) => c.finding.agent).sort()).toEqual(["a", "b"]);

    // a's instance reports nothing more: only the idle look moves its window past the crashes.
    // b is removed from the mesh: its instance, and what it concluded, go at once.
    f.engine.state.forgetAgent("b");
    f.run(Math.ceil((300_000 + RESOLVE_AFTER_MS + 30_000) / INTERVAL) + 2);
    const resolved = f.changes.filter((c) => c.change === "resolved" && c.finding.kind === "crash-loop");
    expect(resolved.map((c) => c.finding.agent).sort()).toEqual(["a", "b"]);
    const resolvedAt = (agent: string) => resolved.find((c) => c.finding.agent === agent)?.finding.resolvedAt ?? 0;
    // b's went as soon as it could resolve; a's waited for its crashes to leave the window.
    expect(resolvedAt("b")).toBeLessThan(resolvedAt("a"));
    expect(f.open().filter((x) => x.kind === "crash-loop")).toEqual([]);
  });

  it("reads disk, OOM kills, flapping checks and offline agents, each with its reason", () => {
    const f = new Feed(["a", "b"]);
    const app = "script:node /srv/app.js";
    const mount = JSON.stringify({ mount: "/data" });
    f.tick((f) => f.event("a", "service.observed", svc(app, "app"), { source: "sdk", version: "3" }, "sdk"));
    f.run(40, (f, i) => {
      alive(f, "a", app);
      f.sample("a", app, "service.check.passing", i % 4 < 2 ? 1 : 0, JSON.stringify({ check: "db" }));
      if (i > 0 && i % 2 === 0)
        f.event(
          "a",
          "service.check_changed",
          svc(app, "app"),
          { check: "db", from: i % 4 === 0 ? "fail" : "pass", to: i % 4 === 0 ? "pass" : "fail" },
          "sdk",
        );
      f.host("a", "host.disk.used_bytes", (900 + i) * MIB, mount);
      f.host("a", "host.disk.available_bytes", (100 - i) * MIB, mount);
      if (i === 30)
        f.event("a", "service.oom_killed", svc(app, "app"), { kills: "1", limitBytes: String(256 * MIB), peakBytes: String(256 * MIB) });
    });
    f.offline.add("b");
    f.run(2);
    const kinds = Object.fromEntries(f.open().map((x) => [x.kind, x]));
    expect(kinds["health-failing"]?.summary).toMatch(/check db flaps/);
    expect(kinds["oom-kill"]).toMatchObject({ severity: "critical", recommendation: { action: "scale" } });
    expect(kinds["host-pressure"]).toMatchObject({ service: null, agent: "a", rootCause: { service: null, kind: "host-pressure" } });
    expect(kinds["host-pressure"]?.summary).toMatch(/^\/data on a is 9\d % full/);
    expect(kinds["agent-offline"]).toMatchObject({ agent: "b" });
  });

  it("takes thresholds from the config: per detector, per service, and off", () => {
    const key = "exe:/opt/x";
    const feed = (config: ConstructorParameters<typeof Engine>[0]) => {
      const f = new Feed(["a"]);
      Object.assign(f, { engine: new Engine({ ...config }) });
      for (const name of ["a"])
        f.engine.state.applyAgent({ name, health: "healthy", lastHeartbeat: T0, plugins: [], clockOffsetMs: 0 }, T0);
      f.tick((f) => f.event("a", "service.observed", svc(key, "x"), {}));
      f.run(8, (f, i) => {
        alive(f, "a", key);
        if (i % 4 === 1) crash(f, "a", key, "x", 100 + i * 2);
      });
      return f.open().map((x) => x.kind);
    };
    expect(feed({})).toEqual([]); // two crashes, and three make a loop by default
    expect(feed({ config: { detectors: { "crash-loop": { minCrashes: 2 } } } })).toEqual(["crash-loop"]);
    expect(
      feed({ config: { detectors: { "crash-loop": { minCrashes: 2 } }, services: { x: { "crash-loop": { enabled: false } } } } }),
    ).toEqual([]);
  });
});
