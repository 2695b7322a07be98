/**
 * The latest sample of each service instance's metrics (CPU, memory): what `coral top` and
 * the Prometheus scrape show. Samples sit packed in per-agent frames, so this reads, per
 * agent, only the frames since the oldest of its wanted series last reported.
 */
import type { LatestSample } from "@coral-mesh/sdk-proto";
import { and, desc, eq, gte, inArray } from "drizzle-orm";
import { SERIES_TOUCH_MS } from "../rpc/ingest.js";
import type { Store } from "./db.js";
import { unpackSamples } from "./frames.js";
import { readModel } from "./read-model.js";
import { metricFrames, metricSeries } from "./schema.js";

export const INSTANCE_METRICS = ["service.cpu.cores", "service.memory.rss_bytes"] as const;

/** As Prometheus does, a series silent this long is stale: its instance has gone. */
export const STALE_AFTER_MS = 5 * 60_000;

/** A frame holds one batch: it may start this long before a sample it holds (a batch sent after a partition). */
const FRAME_SLACK_MS = 5 * 60_000;

export function latestSamples(db: Store, names: readonly string[], since: number): LatestSample[] {
  const series = db
    .select()
    .from(metricSeries)
    .where(
      and(
        inArray(metricSeries.name, [...names]),
        eq(metricSeries.subjectKind, "service"),
        gte(metricSeries.lastSeenAt, since - SERIES_TOUCH_MS),
      ),
    )
    .all();
  if (series.length === 0) return [];
  const inv = readModel(db).inventory();
  const byAgent = new Map<string, typeof series>();
  for (const s of series) {
    const list = byAgent.get(s.agentName);
    if (list) list.push(s);
    else byAgent.set(s.agentName, [s]);
  }
  const out: LatestSample[] = [];
  for (const [agent, list] of byAgent) {
    const wanted = new Map(list.map((s) => [s.id, s]));
    const latest = new Map<number, { t: number; value: number }>();
    const frames = db
      .select({ startTime: metricFrames.startTime, data: metricFrames.data })
      .from(metricFrames)
      .where(and(eq(metricFrames.agentName, agent), gte(metricFrames.startTime, since - FRAME_SLACK_MS), gte(metricFrames.endTime, since)))
      .orderBy(desc(metricFrames.startTime))
      .all();
    for (const frame of frames) {
      // Newest first: once every series has a sample, older frames hold none newer (bar a late batch, a rare few seconds).
      if (latest.size === wanted.size) break;
      unpackSamples(frame.data, frame.startTime, (id, t, value) => {
        if (!wanted.has(id)) return;
        const seen = latest.get(id);
        if (!seen || t > seen.t) latest.set(id, { t, value });
      });
    }
    for (const [id, sample] of latest) {
      const s = wanted.get(id);
      if (!s || sample.t < since) continue;
      out.push({ service: inv.nameOf(agent, s.subjectId) ?? s.subjectId, agent, key: s.subjectId, metric: s.name, ...sample });
    }
  }
  return out.sort(
    (a, b) =>
      a.service.localeCompare(b.service) ||
      a.agent.localeCompare(b.agent) ||
      a.key.localeCompare(b.key) ||
      a.metric.localeCompare(b.metric),
  );
}
