/** Custom health checks: each runs under its own timeout, and a hung one never hangs a probe. */

// biome-ignore lint/suspicious/noConfusingVoidType: a check that returns nothing passes, as a callback returning void does
export type CheckOutcome = void | boolean | { ok: boolean; message?: string };
export type CheckFunction = () => CheckOutcome | Promise<CheckOutcome>;

export type CheckState = "pending" | "pass" | "fail" | "timeout";

export interface CheckResultView {
  name: string;
  status: CheckState;
  message: string;
  durationMs: number;
  checkedAt: number;
  timeoutMs: number;
}

export interface CheckDefinition {
  name: string;
  run: CheckFunction;
  timeoutMs: number;
}

export class CheckRunner {
  private readonly results = new Map<string, CheckResultView>();
  /** A check still running from an earlier round is not started again. */
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(private readonly checks: readonly CheckDefinition[]) {
    for (const check of checks) {
      this.results.set(check.name, {
        name: check.name,
        status: "pending",
        message: "not run yet",
        durationMs: 0,
        checkedAt: 0,
        timeoutMs: check.timeoutMs,
      });
    }
  }

  get latest(): CheckResultView[] {
    return [...this.results.values()];
  }

  /** True when every check has passed its latest run. */
  get healthy(): boolean {
    return this.latest.every((r) => r.status === "pass");
  }

  async runAll(): Promise<CheckResultView[]> {
    await Promise.all(this.checks.map((check) => this.runOne(check)));
    return this.latest;
  }

  private async runOne(check: CheckDefinition): Promise<void> {
    const started = Date.now();
    const previous = this.inFlight.get(check.name);
    const attempt =
      previous ??
      Promise.resolve()
        .then(check.run)
        .finally(() => this.inFlight.delete(check.name));
    if (!previous) this.inFlight.set(check.name, attempt);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), check.timeoutMs);
      timer.unref?.();
    });
    let status: CheckState;
    let message: string;
    try {
      const outcome = await Promise.race([attempt, timeout]);
      if (outcome === "timeout") {
        status = "timeout";
        message = previous
          ? `still running after ${check.timeoutMs} ms (from an earlier round)`
          : `did not finish within ${check.timeoutMs} ms`;
      } else {
        const report = typeof outcome === "object" && outcome !== null ? (outcome as { ok: boolean; message?: string }) : undefined;
        const ok = outcome !== false && (report?.ok ?? true);
        status = ok ? "pass" : "fail";
        message = report?.message ?? (ok ? "ok" : "check reported failure");
      }
    } catch (error) {
      status = "fail";
      message = error instanceof Error ? error.message : String(error);
    } finally {
      clearTimeout(timer);
    }
    this.results.set(check.name, {
      name: check.name,
      status,
      message,
      durationMs: Date.now() - started,
      checkedAt: Date.now(),
      timeoutMs: check.timeoutMs,
    });
  }
}
