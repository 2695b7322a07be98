/**
 * Agent health, from how long ago it last sent a heartbeat and what its plugins report.
 * Thresholds are in heartbeat intervals (10 s by default), so they follow the interval:
 *
 *   healthy    heartbeat within 2 intervals, every plugin running
 *   degraded   heartbeat within 2 intervals, some plugin starting, degraded or failed
 *   unhealthy  no heartbeat for 2 to 6 intervals (missed one or two; a path problem?)
 *   offline    no heartbeat for over 6 intervals, or never
 */
export type AgentHealth = "healthy" | "degraded" | "unhealthy" | "offline";

export const HEALTH_THRESHOLDS = { unhealthyAfterIntervals: 2, offlineAfterIntervals: 6 } as const;

export interface PluginHealth {
  name: string;
  state: "starting" | "running" | "degraded" | "failed" | "stopped";
}

export function agentHealth(
  lastHeartbeatAt: number | null,
  plugins: readonly PluginHealth[],
  intervalMs: number,
  now: number,
): AgentHealth {
  if (lastHeartbeatAt === null) return "offline";
  const age = now - lastHeartbeatAt;
  if (age > HEALTH_THRESHOLDS.offlineAfterIntervals * intervalMs) return "offline";
  if (age > HEALTH_THRESHOLDS.unhealthyAfterIntervals * intervalMs) return "unhealthy";
  return plugins.every((p) => p.state === "running") ? "healthy" : "degraded";
}
