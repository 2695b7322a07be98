/**
 * Rollups: each agent's raw frames folded into one row per minute, and minutes into one row
 * per hour, every series' count, sum, min and max in each. They outlive the raw samples
 * (24 h by default) by weeks and months, so baselines survive.
 *
 * A pass reads the frames stored since the last (by id, so late arrivals from an agent that
 * was cut off are folded too), and recomputes each touched minute once it is over. A minute
 * not over yet keeps its frames unread: the watermark stops before them, so a restart loses
 * nothing. Hours are recomputed from their minutes the same way, with a time watermark.
 */
import { sql } from "drizzle-orm";
import type { Store } from "./db.js";
import { type Aggregate, fold, packAggregates, unpackAggregates, unpackSamples } from "./frames.js";
import { metricFrames, metricRollups, storeState } from "./schema.js";

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
/** A bucket is folded this long after it ends: batches of its last collect are still on their way. */
const GRACE_MS = 30_000;
/** Frames read in one pass at most; the rest wait for the next. */
const FRAMES_PER_PASS = 50_000;
/** Buckets folded per transaction: a pass at a thousand agents folds a thousand minutes. */
const BUCKETS_PER_TRANSACTION = 200;

const FRAMES_DONE = "rollup.frames.done";
const HOURS_DONE = "rollup.hours.done";

const p = sql.placeholder;

export class Rollups {
  private readonly newFrames;
  private readonly framesOfMinute;
  private readonly minutesOfHour;
  private readonly agentsWithMinutes;
  private readonly write;
  private readonly getState;
  private readonly setState;

  constructor(private readonly db: Store) {
    this.newFrames = db
      .select({ id: metricFrames.id, agentName: metricFrames.agentName, startTime: metricFrames.startTime, endTime: metricFrames.endTime })
      .from(metricFrames)
      .where(sql`${metricFrames.id} > ${p("after")}`)
      .orderBy(metricFrames.id)
      .limit(FRAMES_PER_PASS)
      .prepare();
    // A frame's samples lie between its start and end, and a batch spans seconds: starting up to a minute before is enough.
    this.framesOfMinute = db
      .select({ startTime: metricFrames.startTime, data: metricFrames.data })
      .from(metricFrames)
      .where(
        sql`${metricFrames.agentName} = ${p("agent")} AND ${metricFrames.startTime} >= ${p("from")} AND ${metricFrames.startTime} < ${p("to")} AND ${metricFrames.endTime} >= ${p("minute")}`,
      )
      .prepare();
    this.minutesOfHour = db
      .select({ data: metricRollups.data })
      .from(metricRollups)
      .where(
        sql`${metricRollups.resolutionMs} = ${MINUTE_MS} AND ${metricRollups.agentName} = ${p("agent")} AND ${metricRollups.bucketStart} >= ${p("from")} AND ${metricRollups.bucketStart} < ${p("to")}`,
      )
      .prepare();
    this.agentsWithMinutes = db
      .selectDistinct({ agentName: metricRollups.agentName, bucketStart: metricRollups.bucketStart })
      .from(metricRollups)
      // Only the hours that are over: those of the hour under way would be read on every pass and dropped.
      .where(
        sql`${metricRollups.resolutionMs} = ${MINUTE_MS} AND ${metricRollups.bucketStart} >= ${p("from")} AND ${metricRollups.bucketStart} < ${p("to")}`,
      )
      .prepare();
    this.write = db
      .insert(metricRollups)
      .values({ agentName: p("agent"), resolutionMs: p("resolution"), bucketStart: p("bucket"), data: p("data") })
      .onConflictDoUpdate({
        target: [metricRollups.resolutionMs, metricRollups.agentName, metricRollups.bucketStart],
        set: { data: sql`excluded.data` },
      })
      .prepare();
    this.getState = db
      .select({ value: storeState.value })
      .from(storeState)
      .where(sql`${storeState.key} = ${p("key")}`)
      .prepare();
    this.setState = db
      .insert(storeState)
      .values({ key: p("key"), value: p("value") })
      .onConflictDoUpdate({ target: storeState.key, set: { value: sql`excluded.value` } })
      .prepare();
  }

  /**
   * One pass: folds every minute and hour that is over and has new data. It writes a few
   * hundred buckets per transaction and awaits `pause` between them, so that agents' reports
   * are stored meanwhile; the watermarks move only at the end, so a pass cut short is redone.
   */
  async pass(
    now: number,
    pause: () => Promise<void> = () => new Promise((resolve) => setImmediate(resolve)),
  ): Promise<{ minutes: number; hours: number }> {
    const minutesOver = Math.floor((now - GRACE_MS) / MINUTE_MS) * MINUTE_MS; // buckets starting before this are over
    const hoursOver = Math.floor((now - GRACE_MS) / HOUR_MS) * HOUR_MS;
    const framesDone = this.getState.get({ key: FRAMES_DONE })?.value ?? 0;
    const hoursDone = this.getState.get({ key: HOURS_DONE })?.value ?? 0;

    // Minutes touched by new frames; those not over yet hold the watermark back.
    const touched = new Map<string, { agent: string; minute: number }>();
    let heldBack = Number.POSITIVE_INFINITY;
    let lastRead = framesDone;
    for (const frame of this.newFrames.all({ after: framesDone })) {
      lastRead = frame.id;
      for (let minute = floor(frame.startTime, MINUTE_MS); minute <= frame.endTime; minute += MINUTE_MS) {
        if (minute >= minutesOver) heldBack = Math.min(heldBack, frame.id);
        else touched.set(`${frame.agentName}\u0000${minute}`, { agent: frame.agentName, minute });
      }
    }
    const hours = new Map<string, { agent: string; hour: number }>();
    await this.inSlices([...touched.values()], pause, ({ agent, minute }) => {
      const aggregates = new Map<number, Aggregate>();
      for (const frame of this.framesOfMinute.all({ agent, from: minute - MINUTE_MS, to: minute + MINUTE_MS, minute })) {
        unpackSamples(frame.data, frame.startTime, (seriesId, time, value) => {
          if (time < minute || time >= minute + MINUTE_MS) return;
          aggregates.set(seriesId, fold(aggregates.get(seriesId), { count: 1, sum: value, min: value, max: value }));
        });
      }
      if (aggregates.size === 0) return;
      this.write.run({ agent, resolution: MINUTE_MS, bucket: minute, data: packAggregates(aggregates) });
      const hour = floor(minute, HOUR_MS);
      // An hour already folded gets a late minute: fold it again. Later hours are folded below once over.
      if (hour < hoursDone) hours.set(`${agent}\u0000${hour}`, { agent, hour });
    });
    for (const row of this.agentsWithMinutes.all({ from: hoursDone, to: hoursOver })) {
      const hour = floor(row.bucketStart, HOUR_MS);
      if (hour < hoursOver) hours.set(`${row.agentName}\u0000${hour}`, { agent: row.agentName, hour });
    }
    await this.inSlices([...hours.values()], pause, ({ agent, hour }) => {
      const aggregates = new Map<number, Aggregate>();
      for (const minute of this.minutesOfHour.all({ agent, from: hour, to: hour + HOUR_MS })) {
        unpackAggregates(minute.data, (seriesId, a) => aggregates.set(seriesId, fold(aggregates.get(seriesId), a)));
      }
      if (aggregates.size > 0) this.write.run({ agent, resolution: HOUR_MS, bucket: hour, data: packAggregates(aggregates) });
    });

    this.db.$client.transaction(() => {
      this.setState.run({ key: FRAMES_DONE, value: Number.isFinite(heldBack) ? heldBack - 1 : lastRead });
      this.setState.run({ key: HOURS_DONE, value: Math.max(hoursDone, hoursOver) });
    })();
    return { minutes: touched.size, hours: hours.size };
  }

  /** Runs `each` over `items`, BUCKETS_PER_TRANSACTION to a transaction, pausing between transactions. */
  private async inSlices<T>(items: T[], pause: () => Promise<void>, each: (item: T) => void): Promise<void> {
    const slice = this.db.$client.transaction((part: T[]) => {
      for (const item of part) each(item);
    });
    for (let i = 0; i < items.length; i += BUCKETS_PER_TRANSACTION) {
      if (i > 0) await pause();
      slice(items.slice(i, i + BUCKETS_PER_TRANSACTION));
    }
  }
}

const floor = (time: number, unit: number) => Math.floor(time / unit) * unit;
