/**
 * The coordinator watching the mesh: each pass evaluates every agent's health (from its
 * heartbeat age and plugin states) and discovery's state, and records each change as an
 * event. Health is kept in the store, so a restarted coordinator does not announce again
 * what it had already said. It is a pure pass over the store with the time given: a
 * periodic job runs it, and tests run it with any clock.
 */
import { eq } from "drizzle-orm";
import type { Bus } from "../store/bus.js";
import type { Store } from "../store/db.js";
import type { Observe } from "../store/observations.js";
import { agents } from "../store/schema.js";
import { agentHealth, type PluginHealth } from "./health.js";
import type { RegistrarState } from "./registrar.js";

export interface WatcherOptions {
  db: Store;
  observe: Observe;
  bus?: Bus;
  heartbeatIntervalMs: number;
  discoveryState?: () => RegistrarState;
}

export class MeshWatcher {
  private discovery: RegistrarState["state"] | undefined;

  constructor(private readonly options: WatcherOptions) {}

  pass(now: number): void {
    const { db, observe, bus, heartbeatIntervalMs } = this.options;
    const rows = db
      .select({ name: agents.name, lastHeartbeatAt: agents.lastHeartbeatAt, plugins: agents.plugins, health: agents.health })
      .from(agents)
      .all();
    for (const agent of rows) {
      const health = agentHealth(agent.lastHeartbeatAt, JSON.parse(agent.plugins) as PluginHealth[], heartbeatIntervalMs, now);
      if (health === agent.health) continue;
      db.update(agents).set({ health }).where(eq(agents.name, agent.name)).run();
      // An agent that never reported is offline from the start: that is no news.
      if (agent.health === null && health === "offline") continue;
      observe({
        kind: "agent.health_changed",
        agent: agent.name,
        subject: { kind: "agent", id: agent.name, name: agent.name },
        attributes: { from: agent.health ?? "none", to: health },
        evidence: { lastHeartbeatAt: agent.lastHeartbeatAt, heartbeatIntervalMs },
        time: now,
      });
      bus?.emit("health.changed", { agent: agent.name, from: agent.health, to: health, at: now });
    }

    const state = this.options.discoveryState?.();
    if (!state) return;
    const was = this.discovery;
    this.discovery = state.state;
    if (was === undefined || was === state.state) return;
    if (state.state === "failing" || (state.state === "registered" && was === "failing")) {
      observe({
        kind: state.state === "failing" ? "discovery.failing" : "discovery.recovered",
        agent: null,
        subject: { kind: "coordinator", id: "discovery", name: "discovery" },
        attributes: { from: was, to: state.state, ...(state.lastError ? { error: state.lastError } : {}) },
        time: now,
      });
    }
  }
}
