/**
 * Periodic jobs of a long-running process (retention, the reviver, endpoint recording). A
 * failure is logged with the job's name and its cause, and the next run comes as usual: a
 * job never takes the process down, and never fails unseen. The next run is timed from the
 * end of the last, so runs of one job never overlap. Timers are unref'd: a job alone keeps
 * no process alive.
 */

/** The timer functions a job runs on: the global ones unless a test passes its own. */
export interface PeriodicTimers {
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const globalTimers: PeriodicTimers = {
  setTimeout: (run, ms) => setTimeout(run, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface PeriodicOptions {
  log: (line: string) => void;
  timers?: PeriodicTimers;
}

export interface PeriodicJob {
  /** No run starts after this; resolves once a run under way has ended. */
  stop(): Promise<void>;
}

/**
 * Runs `job` every `intervalMs`, the first time one interval from now. A failure is logged
 * once per cause (the same failure every few seconds says nothing new), and its end too.
 */
export function every(name: string, intervalMs: number, job: () => unknown, options: PeriodicOptions): PeriodicJob {
  const timers = options.timers ?? globalTimers;
  let timer: unknown;
  let running: Promise<void> | undefined;
  let stopped = false;
  let failing: string | undefined;

  const run = async () => {
    try {
      await job();
      if (failing !== undefined) options.log(`${name}: works again`);
      failing = undefined;
    } catch (error) {
      const cause = error instanceof Error ? error.message : String(error);
      if (cause !== failing) options.log(`${name} failed: ${cause} (tried again every ${formatMs(intervalMs)})`);
      failing = cause;
    }
  };
  const schedule = () => {
    timer = timers.setTimeout(() => {
      running = run().finally(() => {
        running = undefined;
        if (!stopped) schedule();
      });
    }, intervalMs);
    (timer as { unref?: () => void } | undefined)?.unref?.();
  };
  schedule();

  return {
    async stop() {
      stopped = true;
      timers.clearTimeout(timer);
      await running;
    },
  };
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}
