/**
 * health-failing: what the SDK says of a service: its health NOT_SERVING, or a named check
 * failing, or flapping (passing and failing in turn). A service that went away altogether is
 * crash-loop's or dependency-down's to say.
 */
import type { Conclusion, InstanceDetector } from "../model.js";
import { ago, confidence, evidence, where } from "./signals.js";

export const healthFailing: InstanceDetector = {
  kind: "health-failing",
  scope: "instance",
  defaults: { forMs: 10_000, flapWindowMs: 300_000, flapChanges: 4 },
  detect({ now, thresholds }, service, instances) {
    const t = thresholds(service.name);
    const out: Conclusion[] = [];
    for (const instance of instances) {
      const notServing =
        instance.health === "not_serving" && instance.healthSince !== null && now - instance.healthSince >= (t.forMs as number);
      const checks = [...instance.checks.values()];
      const failing = checks.filter((c) => !c.passing && now - c.since >= (t.forMs as number));
      const flapping = checks.filter(
        (c) => c.changes.filter((at) => at >= now - (t.flapWindowMs as number)).length >= (t.flapChanges as number),
      );
      if (!notServing && failing.length === 0 && flapping.length === 0) continue;
      const parts: string[] = [];
      if (notServing) parts.push(`reports NOT_SERVING since ${ago(now, instance.healthSince as number)}`);
      for (const c of failing) parts.push(`check ${c.name} fails since ${ago(now, c.since)}`);
      for (const c of flapping)
        if (!failing.includes(c))
          parts.push(
            `check ${c.name} flaps: ${c.changes.filter((at) => at >= now - (t.flapWindowMs as number)).length} changes in ${Math.round((t.flapWindowMs as number) / 60_000)} min`,
          );
      const named = [...new Set([...failing, ...flapping].map((c) => c.name))];
      const since = Math.min(
        notServing ? (instance.healthSince as number) : now,
        ...failing.map((c) => c.since),
        ...flapping.map((c) => c.changes.find((at) => at >= now - (t.flapWindowMs as number)) ?? now),
      );
      const events = instance.events.filter(
        (e) => e.time >= since - 1 && (e.kind === "service.health_changed" || e.kind === "service.check_changed"),
      );
      out.push({
        kind: "health-failing",
        identity: `${instance.agent}\u0000${instance.key}`,
        severity: notServing ? "critical" : "warning",
        service: service.name,
        agent: instance.agent,
        summary: `${where(instance)} ${parts.join("; ")}`,
        confidence: confidence(0.6, instance.source === "sdk"),
        evidence: evidence({
          events,
          checks: checks.map((c) => ({ name: c.name, passing: c.passing, since: c.since })),
          notes: parts,
        }),
        recommendation: {
          action: "investigate",
          step: named.length
            ? `look at what check ${named.join(", ")} of ${instance.name} tests on ${instance.agent} (coral services ${instance.name} shows its checks)`
            : `find why ${instance.name} on ${instance.agent} says it cannot serve (its log, and what it depends on)`,
          ...(named.length ? { target: { check: named.join(",") } } : {}),
        },
        since,
      });
    }
    return out;
  },
};
