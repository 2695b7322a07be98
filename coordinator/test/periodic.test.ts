import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { every } from "../src/periodic.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("every", () => {
  it("runs the job every interval, the first time one interval from now", async () => {
    const job = vi.fn();
    const periodic = every("job", 1_000, job, { log: () => {} });
    await vi.advanceTimersByTimeAsync(999);
    expect(job).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(2_001);
    expect(job).toHaveBeenCalledTimes(3);
    await periodic.stop();
  });

  it("logs a failure with the job's name and cause, once per cause, runs again, and says when it works again", async () => {
    const log: string[] = [];
    const outcomes: Array<() => unknown> = [
      () => {
        throw new Error("SQLITE_BUSY: database is locked");
      },
      () => Promise.reject(new Error("SQLITE_BUSY: database is locked")),
      () => Promise.reject(new Error("SQLITE_FULL: database or disk is full")),
      () => {},
      () => {},
    ];
    const job = vi.fn(() => outcomes.shift()?.());
    const periodic = every("retention", 1_000, job, { log: (line) => log.push(line) });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(job).toHaveBeenCalledTimes(5);
    expect(log).toEqual([
      "retention failed: SQLITE_BUSY: database is locked (tried again every 1 s)",
      "retention failed: SQLITE_FULL: database or disk is full (tried again every 1 s)",
      "retention: works again",
    ]);
    await periodic.stop();
  });

  it("never runs a job twice at once: the next run is one interval after the last ended", async () => {
    let running = 0;
    let most = 0;
    const starts: number[] = [];
    const job = vi.fn(async () => {
      starts.push(Date.now());
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 2_500));
      running--;
    });
    const started = Date.now();
    const periodic = every("slow", 1_000, job, { log: () => {} });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(most).toBe(1);
    expect(starts.map((t) => t - started)).toEqual([1_000, 4_500, 8_000]);
    const stopping = periodic.stop(); // the third run ends at 10.5 s
    await vi.advanceTimersByTimeAsync(500);
    await stopping;
  });

  it("stops: no run after stop(), which waits for the run under way", async () => {
    let finished = false;
    const job = vi.fn(async () => {
      await new Promise((r) => setTimeout(r, 500));
      finished = true;
    });
    const periodic = every("job", 1_000, job, { log: () => {} });
    await vi.advanceTimersByTimeAsync(1_100);
    expect(job).toHaveBeenCalledTimes(1);
    let stopped = false;
    const stopping = periodic.stop().then(() => {
      stopped = true;
    });
    await vi.advanceTimersByTimeAsync(100);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(400);
    await stopping;
    expect(finished).toBe(true);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(job).toHaveBeenCalledTimes(1);
  });

  it("takes its timers from the caller, and unrefs what they return", async () => {
    const unref = vi.fn();
    const pending: Array<() => void> = [];
    const timers = {
      setTimeout: vi.fn((run: () => void) => {
        pending.push(run);
        return { unref };
      }),
      clearTimeout: vi.fn(),
    };
    const job = vi.fn();
    const periodic = every("job", 60_000, job, { log: () => {}, timers });
    expect(timers.setTimeout).toHaveBeenCalledWith(expect.any(Function), 60_000);
    expect(unref).toHaveBeenCalledTimes(1);
    pending.shift()?.();
    await vi.waitFor(() => expect(timers.setTimeout).toHaveBeenCalledTimes(2));
    expect(job).toHaveBeenCalledTimes(1);
    await periodic.stop();
    expect(timers.clearTimeout).toHaveBeenCalledTimes(1);
  });
});
