/**
 * The plugin host: runs one plugin on behalf of the agent, and owns every call into it.
 *
 * - Options are validated before anything starts; an error names the plugin and the field.
 * - Each call (start, collect, stop) runs under a timeout with an AbortSignal. Whatever it
 *   throws or rejects, now or later, is caught and reported with the plugin's name.
 * - A collect never overlaps the previous one: one that hangs past its timeout is abandoned,
 *   and the next waits until it settles, for one more timeout at most. One that ignored its
 *   abort signal that long is given up (reported, and what it emits later is dropped), and
 *   collects go on: a stuck collect never blocks its plugin until the agent restarts.
 * - Failures turn the plugin `degraded`. After `breakerThreshold` failures in a row, the
 *   circuit opens: the plugin is `failed`, stopped, and started again after a cooldown that
 *   doubles each time (the half-open trial); a success closes the circuit.
 * - Emitted items are validated; a malformed one is dropped and counted as the plugin's error.
 * - A dropped item or a given-up collect holds the plugin `degraded`, with the reason, for
 *   `degradedHoldMs` after the last one (a minute): long enough for heartbeats to carry it to
 *   `coral status`, where a flip back at the next good collect would hide it.
 */
import { describeIssue } from "@coral-mesh/sdk-proto";
import type * as z from "zod";
import {
  type Clock,
  type Emitter,
  emittedSchemas,
  isWellFormedMetric,
  type Logger,
  type Plugin,
  type PluginContext,
  type PluginStateStore,
} from "./contract.js";

export type PluginStatus = "starting" | "running" | "degraded" | "failed" | "stopped";

export interface PluginReport {
  name: string;
  version: string;
  status: PluginStatus;
  lastError: string | null;
  /** When the status last changed (Unix ms). */
  since: number;
  restarts: number;
}

export interface HostTimings {
  startTimeoutMs: number;
  /** Defaults to the interval, at most 30 s. */
  collectTimeoutMs?: number;
  stopTimeoutMs: number;
  breakerThreshold: number;
  cooldownMs: number;
  maxCooldownMs: number;
  /** How long a dropped item or a given-up collect keeps the plugin `degraded` after the last one. */
  degradedHoldMs: number;
}

export const DEFAULT_TIMINGS: HostTimings = {
  startTimeoutMs: 10_000,
  stopTimeoutMs: 5_000,
  breakerThreshold: 5,
  cooldownMs: 5_000,
  maxCooldownMs: 300_000,
  degradedHoldMs: 60_000,
};

export interface HostOptions {
  plugin: Plugin;
  /** The options as the user wrote them; validated by the plugin's schema. */
  options: unknown;
  emit: Emitter;
  log: Logger;
  state: PluginStateStore;
  procRoot?: string;
  clock?: Clock;
  /** Overrides the plugin's own interval (the user's `interval` option). */
  intervalMs?: number;
  /** When collects after the first fall (see CollectGrid); hosts given the same grid share its timers. Defaults to one of its own. */
  grid?: CollectGrid;
  timings?: Partial<HostTimings>;
  onReport?: (report: PluginReport) => void;
  /** Called after each collect that succeeded: the agent spools what it emitted right away. */
  onCollected?: () => void;
}

/**
 * Collect times for plugin hosts: after its first, each host collects on `origin + k × its
 * interval` (Date.now() times), whatever a collect took (a slot it overran is skipped), so
 * collects neither drift nor bunch up. Hosts due at the same moment share one timer: a process
 * running several plugins at one interval wakes once per interval for all of them. (Timers of
 * their own would not do: Node counts a delay from the time its event loop last read, which a
 * long collect leaves behind, so hosts due together would wake one after another.)
 */
export class CollectGrid {
  private readonly due = new Map<number, { timer: ReturnType<typeof setTimeout>; callbacks: Set<() => void> }>();

  constructor(readonly origin = Date.now()) {}

  /** The first slot after now for this interval. */
  next(intervalMs: number, now = Date.now()): number {
    return this.origin + (Math.floor((now - this.origin) / intervalMs) + 1) * intervalMs;
  }

  /** Calls `fn` at `time` (a slot from next()); returns what cancels that. */
  at(time: number, fn: () => void): () => void {
    let slot = this.due.get(time);
    if (!slot) {
      const callbacks = new Set<() => void>();
      const timer = setTimeout(
        () => {
          this.due.delete(time);
          for (const callback of callbacks) callback();
        },
        Math.max(0, time - Date.now()),
      );
      timer.unref?.();
      slot = { timer, callbacks };
      this.due.set(time, slot);
    }
    const { timer, callbacks } = slot;
    const callback = () => fn(); // one entry per call, even for the same function
    callbacks.add(callback);
    return () => {
      callbacks.delete(callback);
      if (callbacks.size > 0 || this.due.get(time) !== slot) return;
      clearTimeout(timer);
      this.due.delete(time);
    };
  }
}

export class PluginOptionsError extends Error {
  override readonly name = "PluginOptionsError";
}

/** Validates a plugin's options; the message names the plugin and every wrong field. */
export function parsePluginOptions<S extends z.ZodType>(plugin: Plugin<S>, raw: unknown): z.infer<S> {
  const parsed = plugin.options.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => describeIssue(issue, { "": "the options" }));
  throw new PluginOptionsError(`plugin "${plugin.name}" options: ${problems.join("; ")}`);
}

class TimeoutError extends Error {}

export class PluginHost {
  readonly plugin: Plugin;
  private readonly options: unknown;
  private readonly timings: HostTimings;
  private readonly clock: Clock;
  private readonly intervalMs: number;
  private current: PluginReport;
  /** The agent's, or one of this host's own from its first collect on. */
  private grid: CollectGrid | undefined;
  /** Cancels the collect or restart now scheduled. */
  private cancelScheduled: () => void = () => {};
  /** The call still in flight, possibly abandoned after its timeout. */
  private inFlight: Promise<unknown> | undefined;
  private stopping = false;
  private started = false;
  private failures = 0;
  private cooldowns = 0;
  private stopController = new AbortController();
  private readonly emitter: Emitter;
  /** When the collect in flight was abandoned at its timeout (Date.now()), if it was. */
  private abandonedAt: number | undefined;
  /** Collects given up on since the host was made. */
  private givenUp = 0;
  /** Stops the collect in flight from emitting. */
  private cutInFlight: () => void = () => {};
  /** Why the plugin is held `degraded`, and until when (the plugin's clock). */
  private held: { reason: string; until: number } | undefined;
  private cancelHold: () => void = () => {};

  constructor(private readonly host: HostOptions) {
    this.plugin = host.plugin;
    this.options = parsePluginOptions(host.plugin, host.options);
    this.timings = { ...DEFAULT_TIMINGS, ...host.timings };
    this.clock = host.clock ?? { now: () => Date.now() };
    this.intervalMs = host.intervalMs ?? host.plugin.intervalMs ?? 10_000;
    this.grid = host.grid;
    this.current = {
      name: host.plugin.name,
      version: host.plugin.version,
      status: "stopped",
      lastError: null,
      since: this.clock.now(),
      restarts: 0,
    };
    this.emitter = this.validatingEmitter();
  }

  get report(): PluginReport {
    return { ...this.current };
  }

  /** Starts the plugin and its collect loop. Never throws: a failed start is a state, retried. */
  async start(): Promise<void> {
    this.stopping = false;
    this.stopController = new AbortController();
    this.setStatus("starting", this.current.lastError);
    if (await this.startOnce()) this.schedule(0);
  }

  /** Stops the loop and the plugin; waits for nothing longer than the stop timeout. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopping && this.current.status === "stopped") return;
    this.stopping = true;
    this.cancelScheduled();
    this.cancelHold();
    this.stopController.abort();
    if (this.started) {
      this.started = false;
      const result = await this.call("stop", this.timings.stopTimeoutMs);
      if (result !== true) this.host.log.warn(`plugin ${this.plugin.name}: stop failed: ${result.message}`);
    }
    this.setStatus("stopped", this.current.lastError);
  }

  private async startOnce(): Promise<boolean> {
    const result = await this.call("start", this.timings.startTimeoutMs);
    if (result === true) {
      this.started = true;
      this.failures = 0;
      // With a collect, the first good one makes it `running`.
      if (!this.plugin.collect) this.settle();
      return true;
    }
    this.started = true; // stop() must still run: start may have acquired something before failing
    this.fail(result);
    return false;
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.cancelScheduled();
    const timer = setTimeout(() => void this.tick(), delayMs);
    timer.unref?.();
    this.cancelScheduled = () => clearTimeout(timer);
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    if (this.current.status === "failed") {
      // Half-open: one more try of the whole plugin.
      this.current.restarts++;
      this.setStatus("starting", this.current.lastError);
      if (!(await this.startOnce())) return;
    }
    if (!this.plugin.collect) {
      this.settle();
      return;
    }
    const timeout = this.timings.collectTimeoutMs ?? Math.min(this.intervalMs, 30_000);
    if (this.inFlight) {
      const stuckMs = this.abandonedAt === undefined ? 0 : Date.now() - this.abandonedAt;
      if (stuckMs < timeout) {
        this.fail(new Error(`collect from an earlier interval is still running; skipped this one`));
        return;
      }
      this.giveUp(stuckMs);
    }
    this.grid ??= new CollectGrid();
    const result = await this.call("collect", timeout);
    if (this.stopping) return;
    if (result === true) {
      this.host.onCollected?.();
      this.failures = 0;
      this.cooldowns = 0;
      this.settle();
      this.scheduleNextSlot();
    } else {
      this.fail(result);
    }
  }

  /**
   * The collect in flight ignored its abort signal for a whole timeout after it was abandoned:
   * it may never settle, so it stops blocking the plugin. Its promise stays caught, and the
   * context it was given emits nothing more.
   */
  private giveUp(stuckMs: number): void {
    this.cutInFlight();
    this.inFlight = undefined;
    this.abandonedAt = undefined;
    this.givenUp++;
    const message = `a collect ignored its abort signal and had not settled ${(stuckMs / 1000).toFixed(1)} s after its timeout; it was given up (${this.givenUp} so far) and collects go on`;
    this.host.log.warn(`plugin ${this.plugin.name}: ${message}`);
    this.hold(message);
  }

  /** Held `degraded` for a reason: until `degradedHoldMs` pass without another. */
  private hold(reason: string): void {
    this.held = { reason, until: this.clock.now() + this.timings.degradedHoldMs };
    if (this.current.status === "running" || this.current.status === "degraded") this.setStatus("degraded", reason);
    else if (this.current.status === "starting") this.setStatus("starting", reason);
    this.armHold(this.timings.degradedHoldMs);
  }

  private armHold(delayMs: number): void {
    this.cancelHold();
    if (this.stopping) return;
    const timer = setTimeout(() => {
      const held = this.held;
      if (!held) return;
      const left = held.until - this.clock.now();
      if (left > 0) return this.armHold(left);
      this.held = undefined;
      // Only the hold's own degraded state ends here; a failure since then keeps its own.
      if (this.current.status === "degraded" && this.current.lastError === held.reason) this.setStatus("running", null);
    }, delayMs);
    timer.unref?.();
    this.cancelHold = () => clearTimeout(timer);
  }

  /** A good collect: `running`, unless a hold still says why it is not. */
  private settle(): void {
    const held = this.held;
    if (held && held.until > this.clock.now()) {
      if (this.current.status !== "degraded" || this.current.lastError !== held.reason) this.setStatus("degraded", held.reason);
      return;
    }
    this.held = undefined;
    if (this.current.status !== "running") this.setStatus("running", null);
  }

  /** The next collect, on the grid. */
  private scheduleNextSlot(): void {
    if (this.stopping) return;
    this.cancelScheduled();
    this.grid ??= new CollectGrid();
    this.cancelScheduled = this.grid.at(this.grid.next(this.intervalMs), () => void this.tick());
  }

  private fail(error: Error): void {
    if (this.stopping) return;
    this.failures++;
    this.host.log.warn(`plugin ${this.plugin.name}: ${error.message}`);
    if (this.failures < this.timings.breakerThreshold) {
      this.setStatus("degraded", error.message);
      this.schedule(this.intervalMs);
      return;
    }
    // Circuit open: stop the plugin, wait, then start it again.
    const cooldown = Math.min(this.timings.maxCooldownMs, this.timings.cooldownMs * 2 ** this.cooldowns);
    this.cooldowns++;
    this.failures = 0;
    this.setStatus(
      "failed",
      `${error.message} (${this.timings.breakerThreshold} failures in a row; restarting in ${Math.round(cooldown / 1000)} s)`,
    );
    void (async () => {
      if (this.started) {
        this.started = false;
        await this.call("stop", this.timings.stopTimeoutMs);
      }
      this.schedule(cooldown);
    })();
  }

  /**
   * Calls a hook under a timeout. Returns true, or the error it ended with. A call that times
   * out is abandoned but still owned: its late outcome is caught, and no collect overlaps it.
   */
  private async call(hook: "start" | "collect" | "stop", timeoutMs: number): Promise<true | Error> {
    const fn = this.plugin[hook];
    if (!fn) return true;
    // The signal of a start or collect is made when the plugin first reads it: `passive` and
    // `sdk` never do, and an AbortController with a listener on the host's own costs more than
    // some collects. One read late gets it aborted already, with the reason it would have had.
    let controller: AbortController | undefined;
    let abortedWith: Error | undefined;
    const stopping = this.stopController.signal;
    const onStop = () => controller?.abort(new Error("the plugin is stopping"));
    const stopSignal = hook === "stop" ? AbortSignal.timeout(timeoutMs) : undefined;
    const signal = (): AbortSignal => {
      if (!controller) {
        controller = new AbortController();
        if (abortedWith) controller.abort(abortedWith);
        else if (stopping.aborted) onStop();
        else stopping.addEventListener("abort", onStop, { once: true });
      }
      return controller.signal;
    };
    // A collect given up on may still run: what it emits then is not this plugin's any more.
    let live = true;
    const emitter = this.emitter;
    const emit: Emitter =
      hook === "collect"
        ? {
            event: (item) => live && emitter.event(item),
            metric: (item) => live && emitter.metric(item),
            connection: (item) => live && emitter.connection(item),
          }
        : emitter;
    const context: PluginContext = {
      options: this.options,
      log: this.host.log,
      emit,
      state: this.host.state,
      clock: this.clock,
      procRoot: this.host.procRoot ?? "/proc",
      get signal() {
        return stopSignal ?? signal();
      },
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const running = (async () => fn(context as never))();
    const tracked = running.then(
      () => undefined,
      (error: unknown) => error,
    );
    if (hook === "collect") {
      this.inFlight = tracked;
      this.abandonedAt = undefined;
      this.cutInFlight = () => {
        live = false;
      };
      void tracked.finally(() => {
        if (this.inFlight !== tracked) return;
        this.inFlight = undefined;
        this.abandonedAt = undefined;
      });
    }
    try {
      const outcome = await Promise.race([
        tracked,
        new Promise<TimeoutError>((resolve) => {
          timer = setTimeout(() => resolve(new TimeoutError(`${hook} did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
        }),
      ]);
      if (outcome instanceof TimeoutError) {
        abortedWith = outcome;
        controller?.abort(outcome);
        if (hook === "collect" && this.inFlight === tracked) this.abandonedAt = Date.now();
        return outcome;
      }
      if (outcome !== undefined) return toError(outcome, hook);
      return true;
    } finally {
      clearTimeout(timer);
      if (controller) stopping.removeEventListener("abort", onStop);
    }
  }

  private validatingEmitter(): Emitter {
    const check = <K extends keyof Emitter>(kind: K, item: unknown): Parameters<Emitter[K]>[0] | undefined => {
      if (kind === "metric" && isWellFormedMetric(item)) return item as Parameters<Emitter[K]>[0];
      const parsed = emittedSchemas[kind].safeParse(item);
      if (parsed.success) return parsed.data as Parameters<Emitter[K]>[0];
      const issue = parsed.error.issues[0];
      const message = `emitted a malformed ${kind} (${issue ? describeIssue(issue, { "": `the ${kind}` }) : "invalid"}); it was dropped`;
      this.host.log.warn(`plugin ${this.plugin.name}: ${message}`);
      this.hold(message);
      return undefined;
    };
    return {
      event: (item) => {
        const valid = check("event", item);
        if (valid) this.host.emit.event({ ...valid, time: valid.time ?? this.clock.now() });
      },
      metric: (item) => {
        const valid = check("metric", item);
        if (valid) this.host.emit.metric({ ...valid, time: valid.time ?? this.clock.now() });
      },
      connection: (item) => {
        const valid = check("connection", item);
        if (valid) this.host.emit.connection({ ...valid, time: valid.time ?? this.clock.now() });
      },
    };
  }

  private setStatus(status: PluginStatus, lastError: string | null): void {
    const changed = status !== this.current.status || lastError !== this.current.lastError;
    if (!changed) return;
    this.current = { ...this.current, status, lastError, since: status !== this.current.status ? this.clock.now() : this.current.since };
    this.host.onReport?.(this.report);
  }
}

function toError(value: unknown, hook: string): Error {
  if (value instanceof Error) return new Error(`${hook} failed: ${value.message}`, { cause: value });
  return new Error(`${hook} failed: ${String(value)}`);
}
