/**
 * dependency-down: a service that others call (the resolved graph) is not there for them: every
 * instance stopped listening, went away while its agent still reports, or says NOT_SERVING.
 * Critical once a caller fails too; correlation then points the callers' findings here.
 */
import type { Conclusion, InstanceState, ServiceDetector, SignalEvent } from "../model.js";
import { agentAlive, ago, confidence, crashes, evidence, reporting, sdkService } from "./signals.js";

interface Down {
  instance: InstanceState;
  why: string;
  since: number;
  events: SignalEvent[];
}

export const dependencyDown: ServiceDetector = {
  kind: "dependency-down",
  scope: "service",
  defaults: { restartGapMs: 15_000, callerWindowMs: 300_000 },
  detect({ now, state, thresholds }, service) {
    const callers = state.dependents.get(service.name);
    if (!callers || callers.size === 0 || service.instances.size === 0) return [];
    const t = thresholds(service.name);
    const down: Down[] = [];
    for (const instance of service.instances.values()) {
      const closed = instance.events.filter((e) => e.kind === "port.closed");
      const lastClosed = closed[closed.length - 1];
      if (!agentAlive(state, instance.agent)) return []; // its agent is the story (agent-offline)
      if (!reporting(instance, state, now)) {
        const exit = [...instance.events].reverse().find((e) => e.kind === "process.exited");
        down.push({
          instance,
          why: `is gone since ${ago(now, instance.lastSeen)}`,
          since: exit?.time ?? instance.lastSeen,
          events: exit ? [exit] : [],
        });
      } else if (instance.listening.length === 0 && lastClosed) {
        down.push({
          instance,
          why: `stopped listening on ${lastClosed.attributes.address ?? "its port"} ${ago(now, lastClosed.time)}`,
          since: lastClosed.time,
          events: closed.slice(-3),
        });
      } else if ((instance.health === "not_serving" || instance.health === "unreachable") && instance.healthSince !== null) {
        const change = [...instance.events].reverse().find((e) => e.kind === "service.health_changed");
        down.push({
          instance,
          why: `is ${instance.health} since ${ago(now, instance.healthSince)}`,
          since: instance.healthSince,
          events: change ? [change] : [],
        });
      } else return []; // one instance serves: not down
    }
    const since = Math.min(...down.map((d) => d.since));
    // Callers that fail since it went down: crashes, failing health or checks.
    const failing: string[] = [];
    const callerEvents: SignalEvent[] = [];
    for (const name of callers) {
      const caller = state.services.get(name);
      if (!caller) continue;
      let fails = false;
      for (const instance of caller.instances.values()) {
        const crashed = crashes(instance, since - 1_000, t.restartGapMs as number);
        const unhealthy =
          (instance.health === "not_serving" || instance.health === "unreachable") && (instance.healthSince ?? 0) >= since - 1_000;
        const checks = [...instance.checks.values()].some((c) => !c.passing && c.since >= since - 1_000);
        const exited = instance.events.filter((e) => e.time >= since - 1_000 && e.kind === "process.exited");
        if (crashed.length || unhealthy || checks || exited.length) {
          fails = true;
          callerEvents.push(...crashed.flatMap((c) => c.events), ...exited.slice(-2));
        }
      }
      if (fails) failing.push(name);
    }
    const first = down[0] as Down;
    const sdk = sdkService(service) || failing.some((n) => sdkService(state.services.get(n) ?? service));
    const callerList = [...callers].sort();
    const summary =
      `${service.name} on ${first.instance.agent} ${first.why}` +
      (failing.length
        ? `; ${failing.length === 1 ? `${failing[0]}, which calls it, fails` : `${failing.sort().join(" and ")}, which call it, fail`} since`
        : `; ${callerList.join(", ")} call${callerList.length === 1 ? "s" : ""} it`);
    const conclusion: Conclusion = {
      kind: "dependency-down",
      identity: service.name,
      severity: failing.length ? "critical" : "warning",
      service: service.name,
      agent: first.instance.agent,
      summary,
      confidence: confidence(0.55, sdk, failing.length ? 0.1 : 0),
      evidence: evidence({
        events: [...down.flatMap((d) => d.events), ...callerEvents],
        edges: callerList.map((from) => ({ from, to: service.name })),
        notes: [
          ...down.map((d) => `${d.instance.name} on ${d.instance.agent} ${d.why}`),
          `called by ${callerList.join(", ")} (the resolved graph)`,
          ...(failing.length ? [`failing since: ${failing.join(", ")}`] : []),
        ],
      }),
      recommendation: {
        action: "restart",
        step: `bring ${service.name} back on ${first.instance.agent} (restart it, or find why it ${first.why.replace(/ since.*| \d.*/, "")}): ${callerList.join(", ")} depend on it`,
        target: { agent: first.instance.agent },
      },
      since,
    };
    return [conclusion];
  },
};
