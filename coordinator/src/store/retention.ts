/**
 * How long the store keeps what: raw samples a day, minute rollups a week, hour rollups
 * ninety days, events thirty; services, series and edges not seen for a week are aged out.
 * Each is configurable (`retention` in coordinator.json).
 */
import { and, lt, type SQL, sql } from "drizzle-orm";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Store } from "./db.js";
import { HOUR_MS, MINUTE_MS } from "./rollups.js";
import {
  batches,
  events,
  joinAnswers,
  metricFrames,
  metricRollups,
  metricSeries,
  services,
  topologyEdgeHours,
  topologyEdges,
} from "./schema.js";

export interface Retention {
  rawMs: number;
  minuteMs: number;
  hourMs: number;
  eventsMs: number;
  /** Services and dependency edges not seen for this long are forgotten. */
  inventoryMs: number;
}

const DAY_MS = 86_400_000;

export const DEFAULT_RETENTION: Retention = {
  rawMs: DAY_MS,
  minuteMs: 7 * DAY_MS,
  hourMs: 90 * DAY_MS,
  eventsMs: 30 * DAY_MS,
  inventoryMs: 7 * DAY_MS,
};

/** What one application of the retention removed, by kind. */
export interface Removed {
  frames: number;
  minutes: number;
  hours: number;
  series: number;
  events: number;
  services: number;
  edges: number;
}

/** Rows deleted per transaction: a busy store holds a day of frames, and the agent service waits while one runs. */
const CHUNK = 5_000;

/**
 * Drops what is past its retention; also answered joins after a day, and report-batch
 * receipts after the raw samples' retention (keeping each agent's latest, which Register
 * reports back as its acknowledged sequence). It deletes in chunks of a few thousand rows
 * and awaits `pause` between them, so the agents' calls are answered meanwhile.
 */
export async function applyRetention(
  db: Store,
  retention: Retention,
  now: number,
  pause: () => Promise<void> = () => new Promise((resolve) => setImmediate(resolve)),
): Promise<Removed> {
  const chunked = async (table: SQLiteTable, where: SQL | undefined): Promise<number> => {
    let removed = 0;
    for (;;) {
      const some = db.select({ rowid: sql`rowid` }).from(table).where(where).limit(CHUNK);
      const changes = db.delete(table).where(sql`rowid IN ${some}`).run().changes;
      removed += changes;
      if (changes < CHUNK) return removed;
      await pause();
    }
  };
  const t = metricRollups;
  const removed: Removed = {
    frames: await chunked(metricFrames, lt(metricFrames.startTime, now - retention.rawMs)),
    minutes: await chunked(t, and(sql`${t.resolutionMs} = ${MINUTE_MS}`, lt(t.bucketStart, now - retention.minuteMs))),
    hours: await chunked(t, and(sql`${t.resolutionMs} = ${HOUR_MS}`, lt(t.bucketStart, now - retention.hourMs))),
    // A series is named by its rollups as long as they last.
    series: await chunked(metricSeries, lt(metricSeries.lastSeenAt, now - Math.max(retention.rawMs, retention.minuteMs, retention.hourMs))),
    events: await chunked(events, lt(events.time, now - retention.eventsMs)),
    services: await chunked(services, lt(services.lastSeenAt, now - retention.inventoryMs)),
    // Their hours go with them (ON DELETE CASCADE).
    edges: await chunked(topologyEdges, lt(topologyEdges.lastSeenAt, now - retention.inventoryMs)),
  };
  await chunked(topologyEdgeHours, lt(topologyEdgeHours.hour, now - retention.hourMs));
  await chunked(joinAnswers, lt(joinAnswers.answeredAt, now - DAY_MS));
  await chunked(
    batches,
    and(
      lt(batches.receivedAt, now - retention.rawMs),
      sql`${batches.sequence} < (SELECT max(b.sequence) FROM ${batches} b WHERE b.agent_name = ${batches.agentName})`,
    ),
  );
  return removed;
}
