/**
 * A bounded series: times and values in two plain arrays (no object per sample), the oldest
 * half merged pairwise when it is full. A few hundred bytes per series however long it runs.
 */
import { type Sample, SERIES_KEEP_MS, type Series } from "./model.js";

/** Samples kept per series at most; at a 10 s interval that is 20 minutes at full resolution. */
export const SERIES_CAPACITY = 120;

export class BoundedSeries implements Series {
  private times: number[] = [];
  private values: number[] = [];

  constructor(
    private readonly capacity = SERIES_CAPACITY,
    private readonly keepMs = SERIES_KEEP_MS,
  ) {}

  get size(): number {
    return this.times.length;
  }

  get last(): Sample | undefined {
    const n = this.times.length;
    return n ? { time: this.times[n - 1] as number, value: this.values[n - 1] as number } : undefined;
  }

  /** Adds a sample; one older than the latest (a late batch) is put in its place. */
  add(time: number, value: number): void {
    const n = this.times.length;
    if (n === 0 || time > (this.times[n - 1] as number)) {
      this.times.push(time);
      this.values.push(value);
    } else {
      let i = n - 1;
      while (i > 0 && (this.times[i - 1] as number) > time) i--;
      if (this.times[i] === time) this.values[i] = value;
      else {
        this.times.splice(i, 0, time);
        this.values.splice(i, 0, value);
      }
    }
    this.trim(time);
  }

  points(since = Number.NEGATIVE_INFINITY): Sample[] {
    const out: Sample[] = [];
    for (let i = 0; i < this.times.length; i++) {
      const time = this.times[i] as number;
      if (time >= since) out.push({ time, value: this.values[i] as number });
    }
    return out;
  }

  private trim(latest: number): void {
    let drop = 0;
    while (drop < this.times.length && (this.times[drop] as number) < latest - this.keepMs) drop++;
    if (drop) {
      this.times.splice(0, drop);
      this.values.splice(0, drop);
    }
    if (this.times.length <= this.capacity) return;
    // Merge the oldest half pairwise: each pair becomes its mean, at its mean time.
    const half = Math.floor(this.capacity / 2) & ~1;
    const times: number[] = [];
    const values: number[] = [];
    for (let i = 0; i < half; i += 2) {
      // Times stay whole milliseconds (evidence and the API carry them as integers).
      times.push(Math.round(((this.times[i] as number) + (this.times[i + 1] as number)) / 2));
      values.push(((this.values[i] as number) + (this.values[i + 1] as number)) / 2);
    }
    this.times = times.concat(this.times.slice(half));
    this.values = values.concat(this.values.slice(half));
  }
}
