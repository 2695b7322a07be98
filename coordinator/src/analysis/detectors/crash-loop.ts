/**
 * crash-loop: an instance crashes again and again. A crash is the whole service going down and
 * being started again soon after (signals.ts `crashes`); workers of a pool replaced while the
 * pool serves, and jobs that finish and start on a schedule, are not crashes.
 */
import type { InstanceDetector } from "../model.js";
import { confidence, crashes, evidence, sdkInstance, where } from "./signals.js";

export const crashLoop: InstanceDetector = {
  kind: "crash-loop",
  scope: "instance",
  defaults: { windowMs: 300_000, minCrashes: 3, criticalCrashes: 6, restartGapMs: 15_000 },
  detect({ now, thresholds }, service, instances) {
    const t = thresholds(service.name);
    const windowMs = t.windowMs as number;
    const out = [];
    for (const instance of instances) {
      const found = crashes(instance, now - windowMs, t.restartGapMs as number);
      if (found.length < (t.minCrashes as number)) continue;
      const first = found[0]?.time ?? now;
      const health = instance.health && instance.health !== "serving" ? `; health ${instance.health}` : "";
      // ebpf's exit status (0 stands for "unknown" there: a fatal signal skips exit_group).
      const codes = [...new Set(found.flatMap((c) => c.events.map((e) => e.attributes.code).filter((code) => code && code !== "0")))];
      const exitNote = codes.length ? ` (exit ${codes.join(", ")})` : "";
      out.push({
        kind: "crash-loop" as const,
        identity: `${instance.agent}\u0000${instance.key}`,
        severity: found.length >= (t.criticalCrashes as number) || health ? ("critical" as const) : ("warning" as const),
        service: service.name,
        agent: instance.agent,
        summary: `${where(instance)} crash-loops: ${found.length} restarts in ${Math.round((now - first) / 60_000) || 1} min${exitNote}${health}`,
        confidence: confidence(0.55, sdkInstance(instance), Math.min(0.1, (found.length - (t.minCrashes as number)) * 0.02)),
        evidence: evidence({
          events: found.flatMap((c) => c.events),
          notes: [
            `${found.length} times every process of ${instance.name} went away and a new one started within ${(t.restartGapMs as number) / 1000} s`,
            ...(health ? [`its health is ${instance.health}`] : []),
          ],
        }),
        recommendation: {
          action: "investigate" as const,
          step: `read ${instance.name}'s output around its last exit on ${instance.agent} (journalctl, or its log): it exits soon after it starts`,
        },
        since: first,
      });
    }
    return out;
  },
};
