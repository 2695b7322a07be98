/** oom-kill: the kernel killed processes of the service at its memory cgroup's limit. */
import type { Conclusion, InstanceDetector } from "../model.js";
import { formatBytes } from "../stats.js";
import { ago, confidence, evidence, where } from "./signals.js";

export const oomKill: InstanceDetector = {
  kind: "oom-kill",
  scope: "instance",
  defaults: { windowMs: 900_000 },
  detect({ now, thresholds }, service, instances) {
    const t = thresholds(service.name);
    const out: Conclusion[] = [];
    for (const instance of instances) {
      const kills = instance.events.filter((e) => e.kind === "service.oom_killed" && e.time >= now - (t.windowMs as number));
      if (kills.length === 0) continue;
      const count = kills.reduce((n, e) => n + (Number(e.attributes.kills) || 1), 0);
      const last = kills[kills.length - 1] as (typeof kills)[number];
      const limit = Number(last.attributes.limitBytes);
      const peak = Number(last.attributes.peakBytes);
      const rss = instance.metrics
        .get("service.memory.rss_bytes")
        ?.points(last.time - 60_000)
        .filter((s) => s.time <= last.time + 1);
      const before = rss?.length ? Math.max(...rss.map((s) => s.value)) : undefined;
      const at = Number.isFinite(limit) ? ` at its ${formatBytes(limit)} limit` : "";
      const peakNote = Number.isFinite(peak) ? ` (peak ${formatBytes(peak)})` : "";
      out.push({
        kind: "oom-kill",
        identity: `${instance.agent}\u0000${instance.key}`,
        severity: "critical",
        service: service.name,
        agent: instance.agent,
        summary: `the kernel OOM-killed ${where(instance)} ${count === 1 ? "once" : `${count} times`}${at}${peakNote}, last ${ago(now, last.time)}`,
        confidence: confidence(0.65, instance.source === "sdk", 0.05),
        evidence: evidence({
          events: kills,
          notes: [
            `service.oom_killed from its memory cgroup: ${count} kill(s) in ${Math.round((t.windowMs as number) / 60_000)} min`,
            ...(before !== undefined ? [`its resident memory before the kill: ${formatBytes(before)}`] : []),
          ],
        }),
        recommendation: {
          action: "scale",
          step: `raise ${instance.name}'s memory limit on ${instance.agent}${Number.isFinite(limit) ? ` above ${formatBytes(limit)}` : ""} (MemoryMax= for a unit), or find what grows to it`,
          ...(Number.isFinite(limit) ? { target: { limitBytes: String(limit) } } : {}),
        },
        since: kills[0]?.time ?? now,
      });
    }
    return out;
  },
};
