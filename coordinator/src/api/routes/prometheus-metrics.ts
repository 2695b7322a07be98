/**
 * GET /metrics: the mesh in the Prometheus exposition format, so an existing Prometheus (and
 * Grafana) scrapes Coral like any other target. Each scrape builds a fresh registry from the
 * store: the values are the store's, not counters this process keeps, except restarts.
 *
 * Restarts are a counter of `process.restarted` events stored since this coordinator started,
 * kept by reading only the events stored since the last scrape. A count of the events still
 * in the store would fall when retention deletes old ones, and Prometheus reads a fall as a
 * reset, so `increase()` would count every remaining restart again; this counter only resets
 * when the coordinator restarts, which `increase()` handles.
 */
import { severities } from "@coral-mesh/sdk-proto";
import { and, eq, gt, sql } from "drizzle-orm";
import type { Hono } from "hono";
import { Counter, Gauge, Registry } from "prom-client";
import { type AgentHealth, agentHealth, type PluginHealth } from "../../mesh/health.js";
import type { Store } from "../../store/db.js";
import { findingCounts } from "../../store/finding-queries.js";
import { INSTANCE_METRICS, latestSamples, STALE_AFTER_MS } from "../../store/latest-metrics.js";
import { readModel } from "../../store/read-model.js";
import { agents, events } from "../../store/schema.js";

const AGENT_STATES: readonly AgentHealth[] = ["healthy", "degraded", "unhealthy", "offline"];
const SERVICE_STATES = ["serving", "not_serving", "unknown"] as const;

/** `process.restarted` events by service and agent, counted from the events stored after `from`. */
class RestartTally {
  private readonly counts = new Map<string, { service: string; agent: string; n: number }>();
  private after: number;

  constructor(private readonly db: Store) {
    this.after =
      db
        .select({ id: sql<number | null>`max(${events.id})` })
        .from(events)
        .get()?.id ?? 0;
  }

  read(): Iterable<{ service: string; agent: string; n: number }> {
    const rows = this.db
      .select({
        agent: events.agentName,
        service: sql<string>`coalesce(${events.subjectName}, ${events.subjectId})`,
        n: sql<number>`count(*)`,
        last: sql<number>`max(${events.id})`,
      })
      .from(events)
      .where(and(gt(events.id, this.after), eq(events.kind, "process.restarted")))
      .groupBy(events.agentName, sql`2`)
      .all();
    for (const row of rows) {
      const agent = row.agent ?? "";
      const key = `${row.service}\u0000${agent}`;
      const entry = this.counts.get(key) ?? { service: row.service, agent, n: 0 };
      entry.n += row.n;
      this.counts.set(key, entry);
    }
    // Up to the newest event of any kind, so the next scrape reads only what came after.
    this.after =
      this.db
        .select({ id: sql<number | null>`max(${events.id})` })
        .from(events)
        .get()?.id ?? this.after;
    return this.counts.values();
  }
}

export function prometheusMetrics(app: Hono, db: Store, now: () => number, heartbeatIntervalMs: number): void {
  const restarts = new RestartTally(db);
  app.get("/metrics", async (c) => {
    const at = now();
    const registry = new Registry();
    const registers = [registry];

    const agentUp = new Gauge({
      name: "coral_agent_up",
      help: "1 when the agent heartbeats (healthy, degraded or unhealthy), 0 when offline.",
      labelNames: ["agent"],
      registers,
    });
    const agentState = new Gauge({
      name: "coral_agent_health",
      help: "The agent's health: 1 for its state, 0 for the others.",
      labelNames: ["agent", "health"],
      registers,
    });
    for (const agent of db
      .select({ name: agents.name, lastHeartbeatAt: agents.lastHeartbeatAt, plugins: agents.plugins })
      .from(agents)
      .all()) {
      const health = agentHealth(agent.lastHeartbeatAt, JSON.parse(agent.plugins) as PluginHealth[], heartbeatIntervalMs, at);
      agentUp.set({ agent: agent.name }, health === "offline" ? 0 : 1);
      for (const state of AGENT_STATES) agentState.set({ agent: agent.name, health: state }, state === health ? 1 : 0);
    }

    const serviceState = new Gauge({
      name: "coral_service_health",
      help: "A service's health on an agent, from its SDK instances (unknown without the SDK): 1 for its state, 0 for the others.",
      labelNames: ["service", "agent", "health"],
      registers,
    });
    const instances = new Gauge({
      name: "coral_service_instances",
      help: "Processes or units of the service on the agent.",
      labelNames: ["service", "agent"],
      registers,
    });
    const lastSeen = new Gauge({
      name: "coral_service_last_seen_timestamp_seconds",
      help: "When an agent last reported the service.",
      labelNames: ["service", "agent"],
      registers,
    });
    const perAgent = new Map<string, { service: string; agent: string; n: number; reporting: number; failing: number; lastSeen: number }>();
    for (const i of readModel(db).inventory().instances) {
      const key = `${i.name}\u0000${i.agentName}`;
      const entry = perAgent.get(key) ?? { service: i.name, agent: i.agentName, n: 0, reporting: 0, failing: 0, lastSeen: 0 };
      entry.n++;
      if (i.source === "sdk" && i.health !== null) {
        entry.reporting++;
        if (i.health !== "serving") entry.failing++;
      }
      entry.lastSeen = Math.max(entry.lastSeen, i.lastSeenAt);
      perAgent.set(key, entry);
    }
    for (const e of perAgent.values()) {
      const labels = { service: e.service, agent: e.agent };
      // The same rule as `coral services`: serving when every SDK instance serves.
      const health = e.reporting === 0 ? "unknown" : e.failing > 0 ? "not_serving" : "serving";
      for (const state of SERVICE_STATES) serviceState.set({ ...labels, health: state }, state === health ? 1 : 0);
      instances.set(labels, e.n);
      lastSeen.set(labels, e.lastSeen / 1000);
    }

    const restartCount = new Counter({
      name: "coral_service_restarts_total",
      help: "Process restarts agents reported for the service since this coordinator started.",
      labelNames: ["service", "agent"],
      registers,
    });
    for (const r of restarts.read()) restartCount.inc({ service: r.service, agent: r.agent }, r.n);

    const cpu = new Gauge({
      name: "coral_service_cpu_cores",
      help: "CPU the instance used over its last collect, in cores.",
      labelNames: ["service", "agent", "instance_key"],
      registers,
    });
    const memory = new Gauge({
      name: "coral_service_memory_rss_bytes",
      help: "The instance's resident memory at its last collect.",
      labelNames: ["service", "agent", "instance_key"],
      registers,
    });
    for (const s of latestSamples(db, INSTANCE_METRICS, at - STALE_AFTER_MS)) {
      const gauge = s.metric === "service.cpu.cores" ? cpu : memory;
      gauge.set({ service: s.service, agent: s.agent, instance_key: s.key }, s.value);
    }

    const open = new Gauge({ name: "coral_findings_open", help: "Open findings by severity.", labelNames: ["severity"], registers });
    const counts = findingCounts(db);
    for (const severity of severities) open.set({ severity }, counts[severity]);

    return c.body(await registry.metrics(), 200, { "content-type": registry.contentType });
  });
}
