/** The few statistics the detectors need, robust where it matters. */
import type { Sample } from "./model.js";

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Median absolute deviation from the median. */
export function mad(values: readonly number[], centre = median(values)): number {
  return median(values.map((v) => Math.abs(v - centre)));
}

/** How many robust standard deviations `value` is above `centre` (MAD scaled to σ for normal data). */
export function robustZ(value: number, centre: number, deviation: number, floor: number): number {
  return (value - centre) / Math.max(1.4826 * deviation, floor);
}

export interface Trend {
  /** Units per millisecond. */
  slope: number;
  /** Fraction of the variance the line explains, 0–1. */
  r2: number;
  first: number;
  last: number;
}

/** Least-squares line through the samples; undefined for fewer than 3 or no time spread. */
export function trend(samples: readonly Sample[]): Trend | undefined {
  const n = samples.length;
  if (n < 3) return undefined;
  const t0 = (samples[0] as Sample).time;
  let sx = 0;
  let sy = 0;
  for (const s of samples) {
    sx += s.time - t0;
    sy += s.value;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const s of samples) {
    const dx = s.time - t0 - mx;
    const dy = s.value - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (sxx === 0) return undefined;
  const slope = sxy / sxx;
  const r2 = syy === 0 ? 0 : (sxy * sxy) / (sxx * syy);
  return { slope, r2, first: (samples[0] as Sample).value, last: (samples[n - 1] as Sample).value };
}

/** The share of samples at or above `threshold`. */
export function shareAtLeast(samples: readonly Sample[], threshold: number): number {
  if (samples.length === 0) return 0;
  let n = 0;
  for (const s of samples) if (s.value >= threshold) n++;
  return n / samples.length;
}

export const MIB = 1024 * 1024;

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * MIB) return `${(bytes / (1024 * MIB)).toFixed(1)} GiB`;
  if (bytes >= MIB) return `${Math.round(bytes / MIB)} MiB`;
  return `${Math.round(bytes / 1024)} KiB`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  const h = Math.round(m / 6) / 10;
  if (h < 48) return `${h} h`;
  return `${Math.round(h / 24)} days`;
}
