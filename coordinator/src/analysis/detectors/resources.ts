/**
 * What a service uses: cpu-saturation (it keeps its host's CPUs busy), memory-leak (its memory
 * grows steadily, with the time to its limit at that rate), resource-spike (far outside its own
 * learned baseline). A job's use while it runs is its work, not a fault (signals.ts `jobLike`).
 */
import type { Baseline, Conclusion, InstanceDetector, Series, Thresholds } from "../model.js";
import { formatBytes, formatDuration, MIB, mad, median, robustZ, shareAtLeast, trend } from "../stats.js";
import { ago, confidence, evidence, jobLike, lastStart, where, window } from "./signals.js";

const CPU = "service.cpu.cores";
const RSS = "service.memory.rss_bytes";
const LIMIT = "service.memory.limit_bytes";

export const cpuSaturation: InstanceDetector = {
  kind: "cpu-saturation",
  scope: "instance",
  reads: "metrics",
  defaults: { windowMs: 60_000, share: 0.9, hostBusy: 0.9, mainConsumer: 0.5, topConsumer: 0.2, minSamples: 3, restartGapMs: 15_000 },
  detect({ now, state, thresholds }, service, instances) {
    const t = thresholds(service.name);
    const out: Conclusion[] = [];
    for (const instance of instances) {
      const series = instance.metrics.get(CPU);
      const host = state.agents.get(instance.agent);
      const cores = host?.host.get("host.cpu.cores")?.last?.value;
      // Most services use a sliver of their host: nothing to look into.
      const least = Math.min(t.share as number, t.mainConsumer as number, t.topConsumer as number);
      if (!series || !cores || (series.last?.value ?? 0) < 0.5 * least * cores) continue;
      const samples = series.points(now - (t.windowMs as number));
      if (samples.length < (t.minSamples as number)) continue;
      if ((samples[samples.length - 1] as { time: number }).time - (samples[0] as { time: number }).time < 0.6 * (t.windowMs as number))
        continue;
      const used = median(samples.map((s) => s.value));
      const hostUse = host?.host.get("host.cpu.utilization")?.points(now - (t.windowMs as number)) ?? [];
      const hostBusyShare = shareAtLeast(hostUse, t.hostBusy as number);
      // All of the host to itself, or most of a host that has nothing left.
      const alone = shareAtLeast(samples, (t.share as number) * cores) >= 0.8;
      const main = used >= (t.mainConsumer as number) * cores && hostBusyShare >= 0.8;
      // The host's CPUs are full and it uses more of them than any other service there.
      const top =
        !alone &&
        !main &&
        hostBusyShare >= 0.8 &&
        used >= (t.topConsumer as number) * cores &&
        state.instancesOn(instance.agent).every((other) => {
          if (other === instance) return true;
          const theirs = other.metrics.get(CPU)?.points(now - (t.windowMs as number)) ?? [];
          return theirs.length === 0 || median(theirs.map((s) => s.value)) < used;
        });
      if (!alone && !main && !top) continue;
      const job = jobLike(instance, t.restartGapMs as number);
      const unhealthy = instance.health === "not_serving";
      out.push({
        kind: "cpu-saturation",
        identity: `${instance.agent}\u0000${instance.key}`,
        severity: job ? "info" : unhealthy ? "critical" : "warning",
        service: service.name,
        agent: instance.agent,
        summary: `${where(instance)} uses ${used.toFixed(2)} of ${cores} cores for ${formatDuration(now - (samples[0] as { time: number }).time)}${job ? " (a job, while it runs)" : ""}`,
        confidence: confidence(0.6, instance.source === "sdk"),
        evidence: evidence({
          metrics: [
            window(instance, CPU, samples, { median: used, max: Math.max(...samples.map((s) => s.value)), hostCores: cores }),
            ...(hostUse.length
              ? [{ ...window(instance, "host.cpu.utilization", hostUse, { median: median(hostUse.map((s) => s.value)) }), subject: "host" }]
              : []),
          ],
          notes: [`${instance.name} kept ${Math.round((used / cores) * 100)} % of ${instance.agent}'s CPUs busy`],
        }),
        recommendation: {
          action: "scale",
          step: `give ${instance.name} more CPU or spread its load (another instance, another host), or find what it spins on: it uses ${used.toFixed(1)} of ${instance.agent}'s ${cores} cores`,
        },
        since: (samples.find((s) => s.value >= (t.share as number) * cores * 0.5) ?? samples[0] ?? { time: now }).time,
      });
    }
    return out;
  },
};

export const memoryLeak: InstanceDetector = {
  kind: "memory-leak",
  scope: "instance",
  reads: "metrics",
  defaults: {
    windowMs: 1_800_000,
    minSpanMs: 120_000,
    minPoints: 12,
    minR2: 0.8,
    minGrowthBytes: 32 * MIB,
    minGrowthShare: 0.2,
    criticalWithinMs: 3_600_000,
  },
  detect({ now, state, thresholds }, service, instances) {
    const t = thresholds(service.name);
    const out: Conclusion[] = [];
    for (const instance of instances) {
      const series = instance.metrics.get(RSS);
      if (!series) continue;
      // Memory starts afresh at a restart: only what grew since counts. The longest recent
      // stretch that grows like a leak is the one reported, so a leak that began after an hour
      // of steady use shows once it has grown for `minSpanMs`, not once it outweighs that hour.
      const start = Math.max(now - (t.windowMs as number), lastStart(instance));
      const all = series.points(start);
      // Flat memory (most of it) never grew enough to look into.
      let low = Number.POSITIVE_INFINITY;
      for (const p of all) if (p.value < low) low = p.value;
      if ((series.last?.value ?? 0) - low < (t.minGrowthBytes as number)) continue;
      let found: { samples: typeof all; line: NonNullable<ReturnType<typeof trend>>; span: number } | undefined;
      for (const back of [t.windowMs as number, 600_000, 300_000, t.minSpanMs as number]) {
        const samples = all.filter((s) => s.time >= Math.max(start, now - back));
        if (samples.length < (t.minPoints as number)) continue;
        const span = (samples[samples.length - 1] as { time: number }).time - (samples[0] as { time: number }).time;
        if (span < 0.9 * (t.minSpanMs as number)) continue;
        const line = trend(samples);
        if (!line || line.slope <= 0 || line.r2 < (t.minR2 as number)) continue;
        const growth = line.last - line.first;
        if (growth < (t.minGrowthBytes as number) || growth < (t.minGrowthShare as number) * line.first) continue;
        // Still growing now, not a warm-up that levelled off.
        const recent = trend(samples.slice(Math.floor((samples.length * 2) / 3)));
        if (!recent || recent.slope < 0.5 * line.slope) continue;
        found = { samples, line, span };
        break;
      }
      if (!found) continue;
      const { samples, line, span } = found;
      const limit =
        instance.metrics.get(LIMIT)?.last?.value ?? state.agents.get(instance.agent)?.host.get("host.memory.total_bytes")?.last?.value;
      const limitKind = instance.metrics.get(LIMIT)?.last ? "its memory limit" : "the host's memory";
      const toLimit = limit && limit > line.last ? (limit - line.last) / line.slope : undefined;
      const perMinute = line.slope * 60_000;
      out.push({
        kind: "memory-leak",
        identity: `${instance.agent}\u0000${instance.key}`,
        severity: toLimit !== undefined && toLimit < (t.criticalWithinMs as number) ? "critical" : "warning",
        service: service.name,
        agent: instance.agent,
        summary:
          `${where(instance)} grows ${formatBytes(perMinute)}/min steadily, ${formatBytes(line.first)} → ${formatBytes(line.last)} in ${formatDuration(span)}` +
          (toLimit !== undefined
            ? `; at this rate it reaches ${limitKind} (${formatBytes(limit as number)}) in ${formatDuration(toLimit)}`
            : ""),
        confidence: confidence(0.5, instance.source === "sdk", Math.min(0.1, (line.r2 - (t.minR2 as number)) * 0.5)),
        evidence: evidence({
          metrics: [
            window(instance, RSS, samples, {
              first: line.first,
              last: line.last,
              slopePerHour: line.slope * 3_600_000,
              r2: line.r2,
              ...(limit ? { limit } : {}),
            }),
          ],
          notes: [
            `a straight line explains ${Math.round(line.r2 * 100)} % of its memory's movement since ${ago(now, (samples[0] as { time: number }).time)}`,
            ...(toLimit !== undefined ? [`${formatDuration(toLimit)} to ${limitKind} at ${formatBytes(perMinute)}/min`] : []),
          ],
        }),
        recommendation: {
          action: "restart",
          step: `restart ${instance.name} on ${instance.agent} before it runs out${toLimit !== undefined ? ` (in about ${formatDuration(toLimit)})` : ""}, then find what it keeps${instance.version ? ` (version ${instance.version})` : ""}`,
          target: { agent: instance.agent },
        },
        since: (samples[0] as { time: number }).time,
      });
    }
    return out;
  },
};

/** Its own normal, from its samples before the recent window; kept five minutes (two hours of older samples move slowly). */
const ownNormals = new WeakMap<Series, { at: number; base: Baseline | undefined }>();
const OWN_NORMAL_KEEP_MS = 300_000;

function ownNormal(series: Series, recentFrom: number, now: number): Baseline | undefined {
  const cached = ownNormals.get(series);
  if (cached && now - cached.at < OWN_NORMAL_KEEP_MS) return cached.base;
  const older = series.points().filter((s) => s.time < recentFrom);
  let base: Baseline | undefined;
  if (older.length >= 30) {
    const values = older.map((s) => s.value);
    const centre = median(values);
    base = { median: centre, mad: mad(values, centre), points: values.length, by: "all" };
  }
  ownNormals.set(series, { at: now, base });
  return base;
}

/** Far outside `base`, by every measure the detector reads. */
const outside = (value: number, base: Baseline, floor: number, t: Thresholds) =>
  robustZ(value, base.median, base.mad, floor / 4) >= (t.z as number) &&
  value >= (t.ratio as number) * base.median &&
  value - base.median >= floor;

export const resourceSpike: InstanceDetector = {
  kind: "resource-spike",
  scope: "instance",
  reads: "metrics",
  defaults: { recentMs: 60_000, z: 6, ratio: 3, minCores: 0.25, minBytes: 64 * MIB, sustainMs: 600_000, restartGapMs: 15_000 },
  detect({ now, state, thresholds }, service, instances) {
    const t = thresholds(service.name);
    const out: Conclusion[] = [];
    for (const instance of instances) {
      for (const [metric, floor, unit] of [
        [CPU, t.minCores as number, "cores"],
        [RSS, t.minBytes as number, "bytes"],
      ] as const) {
        const recentFrom = now - (t.recentMs as number);
        const series = instance.metrics.get(metric);
        const recent = series?.points(recentFrom) ?? [];
        if (!series || recent.length < 3) continue;
        const value = median(recent.map((s) => s.value));
        if (value < floor) continue;
        // A candidate against its own recent normal, confirmed (or not) by the learned baseline,
        // which knows its hour of the week: a nightly batch is its own normal there.
        const own = ownNormal(series, recentFrom, now);
        if (own && !outside(value, own, floor, t)) continue;
        const learned = state.baseline(instance.agent, instance.key, metric, now);
        const base = learned && learned.points >= 24 ? learned : own;
        if (!base || !outside(value, base, floor, t)) continue;
        const z = robustZ(value, base.median, base.mad, floor / 4);
        // How long it has been this far out (the series' own samples).
        const all = series.points();
        let since = (recent[0] as { time: number }).time;
        for (let i = all.length - 1; i >= 0; i--) {
          const s = all[i] as { time: number; value: number };
          if (s.value < (t.ratio as number) * base.median) break;
          since = s.time;
        }
        const job = jobLike(instance, t.restartGapMs as number);
        const fmt = (v: number) => (unit === "cores" ? `${v.toFixed(2)} cores` : formatBytes(v));
        out.push({
          kind: "resource-spike",
          identity: `${instance.agent}\u0000${instance.key}\u0000${metric}`,
          severity: !job && now - since >= (t.sustainMs as number) ? "warning" : "info",
          service: service.name,
          agent: instance.agent,
          summary: `${where(instance)} uses ${fmt(value)} ${unit === "cores" ? "of CPU" : "of memory"}, ${(value / Math.max(base.median, 1e-9)).toFixed(1)}× its usual ${fmt(base.median)}, since ${ago(now, since)}`,
          confidence: confidence(0.5, instance.source === "sdk"),
          evidence: evidence({
            metrics: [window(instance, metric, recent, { median: value, baselineMedian: base.median, baselineMad: base.mad, z })],
            notes: [
              `its baseline (${base.by === "hour-of-week" ? "this hour of the week" : "its history"}, ${base.points} points): median ${fmt(base.median)}`,
            ],
          }),
          recommendation: {
            action: "investigate",
            step: `find what changed for ${instance.name} on ${instance.agent} ${ago(now, since)} (load, input, a job)`,
          },
          since,
        });
      }
    }
    return out;
  },
};
