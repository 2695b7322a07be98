/**
 * How long the store keeps what: raw samples a day, minute rollups a week, hour rollups
 * ninety days, events thirty; services, series and edges not seen for a week are aged out.
 * Each is configurable (`retention` in coordinator.json).
 */
import { and, lt, sql } from "drizzle-orm";
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

/**
 * Drops what is past its retention; also answered joins after a day, and report-batch
 * receipts after the raw samples' retention (keeping each agent's latest, which Register
 * reports back as its acknowledged sequence).
 */
export function applyRetention(db: Store, retention: Retention, now: number): Removed {
  return db.transaction((tx) => {
    const removed: Removed = {
      frames: tx
        .delete(metricFrames)
        .where(lt(metricFrames.endTime, now - retention.rawMs))
        .run().changes,
      minutes: tx
        .delete(metricRollups)
        .where(and(sql`${metricRollups.resolutionMs} = ${MINUTE_MS}`, lt(metricRollups.bucketStart, now - retention.minuteMs)))
        .run().changes,
      hours: tx
        .delete(metricRollups)
        .where(and(sql`${metricRollups.resolutionMs} = ${HOUR_MS}`, lt(metricRollups.bucketStart, now - retention.hourMs)))
        .run().changes,
      // A series is named by its rollups as long as they last.
      series: tx
        .delete(metricSeries)
        .where(lt(metricSeries.lastSeenAt, now - Math.max(retention.rawMs, retention.minuteMs, retention.hourMs)))
        .run().changes,
      events: tx
        .delete(events)
        .where(lt(events.time, now - retention.eventsMs))
        .run().changes,
      services: tx
        .delete(services)
        .where(lt(services.lastSeenAt, now - retention.inventoryMs))
        .run().changes,
      edges: tx
        .delete(topologyEdges)
        .where(lt(topologyEdges.lastSeenAt, now - retention.inventoryMs))
        .run().changes,
    };
    tx.delete(topologyEdgeHours)
      .where(lt(topologyEdgeHours.hour, now - retention.hourMs))
      .run();
    tx.delete(joinAnswers)
      .where(lt(joinAnswers.answeredAt, now - DAY_MS))
      .run();
    tx.delete(batches)
      .where(
        and(
          lt(batches.receivedAt, now - retention.rawMs),
          sql`${batches.sequence} < (SELECT max(b.sequence) FROM ${batches} b WHERE b.agent_name = ${batches.agentName})`,
        ),
      )
      .run();
    return removed;
  });
}
