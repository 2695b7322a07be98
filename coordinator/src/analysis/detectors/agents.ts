/**
 * About agents and their hosts: host-pressure (CPU, memory, disk space), agent-offline (no
 * heartbeats), plugin-failed (a collector that does not run, with its reason).
 */
import type { AgentDetector, Conclusion, Sample } from "../model.js";
import { formatBytes, formatDuration, median, shareAtLeast, trend } from "../stats.js";
import { ago, evidence } from "./signals.js";

const hostWindow = (agent: string, metric: string, samples: readonly Sample[], summary: Record<string, number>) => {
  const brace = metric.indexOf("{");
  return {
    agent,
    subject: "host",
    metric: brace < 0 ? metric : metric.slice(0, brace),
    ...(brace < 0 ? {} : { labels: JSON.parse(metric.slice(brace)) as Record<string, string> }),
    since: Math.round(samples[0]?.time ?? 0),
    until: Math.round(samples[samples.length - 1]?.time ?? 0),
    summary: Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, Math.round(v * 1000) / 1000])),
  };
};

export const hostPressure: AgentDetector = {
  kind: "host-pressure",
  scope: "agent",
  defaults: {
    diskWarning: 0.9,
    diskCritical: 0.95,
    fullWithinMs: 3_600_000,
    memoryWarning: 0.1,
    memoryCritical: 0.05,
    cpuBusy: 0.95,
    cpuWindowMs: 120_000,
  },
  detect({ now, thresholds }, agent) {
    const t = thresholds();
    const out: Conclusion[] = [];
    const base = { kind: "host-pressure" as const, service: null, agent: agent.name };
    for (const [metric, used] of agent.host) {
      if (!metric.startsWith("host.disk.used_bytes")) continue;
      const labels = metric.slice("host.disk.used_bytes".length);
      const available = agent.host.get(`host.disk.available_bytes${labels}`);
      const u = used.last;
      const a = available?.last;
      if (!u || !a || now - u.time > 300_000) continue;
      const share = u.value / (u.value + a.value);
      const mount = labels ? ((JSON.parse(labels) as Record<string, string>).mount ?? "?") : "?";
      const recent = used.points(now - 600_000);
      const line = trend(recent);
      const toFull = line && line.slope > 0 && line.r2 >= 0.6 ? a.value / line.slope : undefined;
      const filling = toFull !== undefined && toFull < (t.fullWithinMs as number) && share >= 0.8;
      if (share < (t.diskWarning as number) && !filling) continue;
      out.push({
        ...base,
        identity: `${agent.name}\u0000disk\u0000${mount}`,
        severity: share >= (t.diskCritical as number) || filling ? "critical" : "warning",
        summary: `${mount} on ${agent.name} is ${Math.round(share * 100)} % full, ${formatBytes(a.value)} left${toFull !== undefined ? `; full in ${formatDuration(toFull)} at this rate` : ""}`,
        confidence: 0.9,
        evidence: evidence({
          metrics: [
            hostWindow(agent.name, metric, recent, {
              used: u.value,
              available: a.value,
              share,
              ...(line ? { slopePerHour: line.slope * 3_600_000 } : {}),
            }),
          ],
          notes: [`host.disk.used_bytes and host.disk.available_bytes of ${mount}`],
        }),
        recommendation: {
          action: "free-resource",
          step: `free space on ${mount} of ${agent.name} (du -xh ${mount} | sort -h | tail), or grow it: ${formatBytes(a.value)} left`,
          target: { mount },
        },
        since: recent.find((s) => s.value / (s.value + a.value) >= 0.8)?.time ?? u.time,
      });
    }
    const total = agent.host.get("host.memory.total_bytes")?.last?.value;
    const free = agent.host.get("host.memory.available_bytes")?.points(now - 60_000) ?? [];
    if (total && free.length >= 3) {
      const share = Math.max(...free.map((s) => s.value)) / total;
      if (share < (t.memoryWarning as number))
        out.push({
          ...base,
          identity: `${agent.name}\u0000memory`,
          severity: share < (t.memoryCritical as number) ? "critical" : "warning",
          summary: `${agent.name} has ${formatBytes(share * total)} of ${formatBytes(total)} memory available (${Math.round(share * 100)} %)`,
          confidence: 0.9,
          evidence: evidence({ metrics: [hostWindow(agent.name, "host.memory.available_bytes", free, { share, total })], notes: [] }),
          recommendation: {
            action: "free-resource",
            step: `find what holds ${agent.name}'s memory (coral services --agent ${agent.name}) and stop or restart it`,
          },
          since: (free[0] as Sample).time,
        });
    }
    const cpu = agent.host.get("host.cpu.utilization")?.points(now - (t.cpuWindowMs as number)) ?? [];
    if (
      cpu.length >= 3 &&
      (cpu[cpu.length - 1] as Sample).time - (cpu[0] as Sample).time >= 0.6 * (t.cpuWindowMs as number) &&
      shareAtLeast(cpu, t.cpuBusy as number) >= 0.8
    ) {
      out.push({
        ...base,
        identity: `${agent.name}\u0000cpu`,
        severity: "warning",
        summary: `${agent.name}'s CPUs are ${Math.round(median(cpu.map((s) => s.value)) * 100)} % busy for ${formatDuration(now - (cpu[0] as Sample).time)}`,
        confidence: 0.9,
        evidence: evidence({
          metrics: [hostWindow(agent.name, "host.cpu.utilization", cpu, { median: median(cpu.map((s) => s.value)) })],
          notes: [],
        }),
        recommendation: {
          action: "investigate",
          step: `see which services use ${agent.name}'s CPU (coral services --agent ${agent.name})`,
        },
        since: (cpu[0] as Sample).time,
      });
    }
    return out;
  },
};

export const agentOffline: AgentDetector = {
  kind: "agent-offline",
  scope: "agent",
  defaults: {},
  detect({ now }, agent) {
    if (agent.health !== "offline") return [];
    const last = agent.lastHeartbeat;
    const event = [...agent.events].reverse().find((e) => e.kind === "agent.health_changed");
    return [
      {
        kind: "agent-offline",
        identity: agent.name,
        severity: "warning",
        service: null,
        agent: agent.name,
        summary: `agent ${agent.name} is offline: ${last ? `no heartbeat since ${ago(now, last)}` : "it has never sent a heartbeat"}; what it runs is unseen`,
        confidence: 0.9,
        evidence: evidence({ events: event ? [event] : [], notes: last ? [`last heartbeat ${new Date(last).toISOString()}`] : [] }),
        recommendation: {
          action: "investigate",
          step: `check ${agent.name}: is the host up, and coral-agent running (systemctl status coral-agent)? coral status shows its path`,
        },
        since: agent.healthSince ?? last ?? now,
      },
    ];
  },
};

export const pluginFailed: AgentDetector = {
  kind: "plugin-failed",
  scope: "agent",
  defaults: {},
  detect({ now }, agent) {
    if (agent.health === "offline") return [];
    const out: Conclusion[] = [];
    for (const [name, plugin] of agent.plugins) {
      if (plugin.state !== "failed") continue;
      out.push({
        kind: "plugin-failed",
        identity: `${agent.name}\u0000${name}`,
        severity: "warning",
        service: null,
        agent: agent.name,
        summary: `plugin ${name} on ${agent.name} does not run${plugin.error ? `: ${plugin.error}` : ""} (since ${ago(now, plugin.since)})`,
        confidence: 0.9,
        evidence: evidence({ notes: [`${name}: ${plugin.state}${plugin.error ? ` — ${plugin.error}` : ""}`] }),
        recommendation: {
          action: "investigate",
          step: plugin.error ? `on ${agent.name}: ${plugin.error}` : `read coral-agent's log on ${agent.name} for why ${name} stopped`,
          target: { plugin: name },
        },
        since: plugin.since,
      });
    }
    return out;
  },
};
