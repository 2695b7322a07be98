/**
 * Every detector, and the correlation that runs over their conclusions: the cause of a symptom
 * is named as its root, so that a cascade reads as one fault with consequences.
 */
import { type AnalysisState, type Conclusion, conclusionKey, type Detector } from "../model.js";
import { agentOffline, hostPressure, pluginFailed } from "./agents.js";
import { badDeploy } from "./bad-deploy.js";
import { crashLoop } from "./crash-loop.js";
import { dependencyDown } from "./dependency-down.js";
import { healthFailing } from "./health-failing.js";
import { oomKill } from "./oom-kill.js";
import { cpuSaturation, memoryLeak, resourceSpike } from "./resources.js";

export const detectors: readonly Detector[] = [
  crashLoop,
  badDeploy,
  cpuSaturation,
  memoryLeak,
  resourceSpike,
  oomKill,
  dependencyDown,
  healthFailing,
  hostPressure,
  agentOffline,
  pluginFailed,
];

/** Kinds that are a service's own fault, which its callers may suffer from. */
const FAULTS = new Set(["dependency-down", "crash-loop", "bad-deploy", "oom-kill", "health-failing"]);
/** What a service shows when something else is wrong: these may be pointed at a root. */
const SYMPTOMS = new Set(["crash-loop", "health-failing", "dependency-down", "memory-leak", "cpu-saturation", "resource-spike"]);
/** A caller's symptom that began this long before its dependency's fault still counts as caused by it (clocks, intervals). */
const SLACK_MS = 15_000;

/**
 * Points each symptom at its cause, where one is concluded too:
 * - on the same instance: a crash loop after a bad deploy is the deploy's, a crash loop after
 *   OOM kills is the kill's; any service's symptom on an offline agent is the agent's;
 * - through the graph: a service whose dependency has a fault that began no later than its own
 *   symptom is that dependency's (and so, transitively, a whole cascade shares one root);
 * - a host's CPU pressure is the service saturating it.
 * A bad deploy is never pointed elsewhere: a version that fails is its own root.
 */
export function correlate(conclusions: Conclusion[], state: AnalysisState): Conclusion[] {
  const byInstance = new Map<string, Conclusion[]>();
  const byService = new Map<string, Conclusion[]>();
  const byAgent = new Map<string, Conclusion[]>();
  for (const c of conclusions) {
    if (c.service && c.agent) push(byInstance, `${c.agent}\u0000${c.service}`, c);
    if (c.service) push(byService, c.service, c);
    if (c.agent) push(byAgent, c.agent, c);
  }
  const root = new Map<Conclusion, Conclusion>();
  for (const c of conclusions) {
    const local = c.service && c.agent ? (byInstance.get(`${c.agent}\u0000${c.service}`) ?? []) : [];
    const offline = c.agent && c.kind !== "agent-offline" ? byAgent.get(c.agent)?.find((o) => o.kind === "agent-offline") : undefined;
    if (offline && c.service) {
      root.set(c, offline);
      continue;
    }
    if (c.kind === "crash-loop" || c.kind === "health-failing" || c.kind === "memory-leak") {
      const deploy = local.find((o) => o.kind === "bad-deploy");
      if (deploy) {
        root.set(c, deploy);
        continue;
      }
    }
    if (c.kind === "crash-loop") {
      const oom = local.find((o) => o.kind === "oom-kill");
      if (oom) {
        root.set(c, oom);
        continue;
      }
    }
    if (c.kind === "host-pressure" && c.identity.endsWith("\u0000cpu")) {
      const hog = byAgent.get(c.agent ?? "")?.find((o) => o.kind === "cpu-saturation");
      if (hog) {
        root.set(c, hog);
        continue;
      }
    }
    if (c.service && SYMPTOMS.has(c.kind)) {
      const cause = [...(state.dependencies.get(c.service) ?? [])]
        .flatMap((dependency) => byService.get(dependency) ?? [])
        .filter((d) => FAULTS.has(d.kind) && d.since <= c.since + SLACK_MS && d.severity !== "info")
        .sort((a, b) => a.since - b.since)[0];
      if (cause) root.set(c, cause);
    }
  }
  // Follow each chain to its end (a cycle stops where it would come back).
  return conclusions.map((c) => {
    let r = root.get(c);
    if (!r) return c;
    const seen = new Set([c]);
    while (root.has(r) && !seen.has(r)) {
      seen.add(r);
      r = root.get(r) as Conclusion;
    }
    if (r === c) return c;
    return {
      ...c,
      // No surer of a consequence than of its cause: the root ranks first among equals.
      confidence: Math.min(c.confidence, r.confidence - 0.01),
      rootCause: { service: r.service, agent: r.agent, kind: r.kind },
      rootOf: conclusionKey(r),
      evidence: { ...c.evidence, notes: [...c.evidence.notes, `caused by: ${r.summary}`].slice(-12) },
    };
  });
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
