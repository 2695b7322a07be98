/**
 * Tells webhooks when a finding opens or resolves: a generic JSON POST (`{ event, finding }`)
 * or a Slack incoming-webhook message. The bus emits synchronously on the thread that stores
 * what agents report, so a message is only queued there; each webhook has its own bounded
 * queue, sent one at a time in order, each request under a timeout and retried with backoff.
 * A slow or failing receiver delays its own queue and nothing else.
 *
 * A webhook URL may carry a secret (Slack's does), so only its host is ever logged.
 */
import type { Finding, NotificationsConfig, Severity } from "@coral-mesh/sdk-proto";
import { severities } from "@coral-mesh/sdk-proto";
import type { PeriodicTimers } from "../periodic.js";
import type { Bus, BusMessages } from "../store/bus.js";

export type Webhook = NotificationsConfig["webhooks"][number];

export interface NotifierOptions {
  /** The `notifications` section of coordinator.json, parsed (defaults applied). */
  config: NotificationsConfig;
  bus: Bus;
  log: (line: string) => void;
  /** For the waits between tries; the global timers unless a test passes its own. */
  timers?: PeriodicTimers;
  /** For Retry-After given as a date. */
  now?: () => number;
  fetch?: typeof fetch;
  /** Notifications held per webhook; past it the oldest is dropped. */
  queueLimit?: number;
  /** Tries per notification, the first included. */
  maxAttempts?: number;
  /** The wait after the first failed try; it doubles after each. */
  backoffMs?: number;
  /** The longest wait, whatever Retry-After asks. */
  maxDelayMs?: number;
  /** Each request's timeout. */
  timeoutMs?: number;
}

const DEFAULTS = { queueLimit: 1_000, maxAttempts: 5, backoffMs: 1_000, maxDelayMs: 300_000, timeoutMs: 5_000 };

const globalTimers: PeriodicTimers = {
  setTimeout: (run, ms) => setTimeout(run, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

type Change = BusMessages["finding.changed"];
type Event = "finding.opened" | "finding.resolved";

/** The host of a webhook URL: what a log line may show of it. */
export function webhookHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(invalid url)";
  }
}

const rank = (s: Severity) => severities.indexOf(s);

/** The body a webhook receives for an opened or resolved finding. */
export function notificationBody(format: Webhook["format"], event: Event, finding: Finding): unknown {
  if (format === "json") return { event, finding };
  return slackMessage(event, finding);
}

/** Slack's `&`, `<` and `>` are markup; everything else in mrkdwn text is shown as written. */
const escapeSlack = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A Slack incoming-webhook message: `text` for notifications and old clients, `blocks` for the message itself; no links. */
export function slackMessage(event: Event, f: Finding): { text: string; blocks: unknown[] } {
  const where = f.service && f.agent ? `${f.service}@${f.agent}` : (f.service ?? f.agent ?? "the mesh");
  const what = event === "finding.opened" ? "opened" : "resolved";
  const text = `[${f.severity.toUpperCase()}] ${f.kind} ${what} on ${where}: ${f.summary}`;
  const rc = f.rootCause;
  const root = rc.service !== f.service ? `\nRoot cause: ${rc.kind} on ${rc.service ?? rc.agent ?? "unknown"}` : "";
  return {
    text,
    blocks: [
      {
        type: "section",
        text: {
          type: "mrkdwn",
          text: `*${f.severity.toUpperCase()}* \`${escapeSlack(f.kind)}\` ${what} on *${escapeSlack(where)}*\n${escapeSlack(f.summary)}${escapeSlack(root)}`,
        },
      },
      ...(event === "finding.opened"
        ? [
            {
              type: "section",
              text: { type: "mrkdwn", text: `*Recommendation* (${f.recommendation.action}): ${escapeSlack(f.recommendation.step)}` },
            },
          ]
        : []),
      {
        type: "context",
        elements: [
          {
            type: "mrkdwn",
            text: `confidence ${Math.round(f.confidence * 100)}% · finding ${escapeSlack(f.id)} · \`coral findings show ${escapeSlack(f.id)}\``,
          },
        ],
      },
    ],
  };
}

/** Retry-After as a wait in ms (seconds or an HTTP date), or undefined. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

interface Pending {
  event: Event;
  findingId: string;
  body: string;
}

/** One webhook's queue and the loop that drains it. */
class Channel {
  readonly host: string;
  private readonly queue: Pending[] = [];
  private draining: Promise<void> | undefined;
  private wait: { handle: unknown; wake: () => void } | undefined;
  private readonly abort = new AbortController();
  private stopped = false;
  dropped = 0;
  delivered = 0;

  constructor(
    readonly webhook: Webhook,
    private readonly o: Required<Omit<NotifierOptions, "config" | "bus">>,
  ) {
    this.host = webhookHost(webhook.url);
  }

  push(item: Pending): void {
    if (this.stopped) return;
    if (this.queue.length >= this.o.queueLimit) {
      const oldest = this.queue.shift();
      this.dropped++;
      this.o.log(
        `notifications to ${this.host}: queue full (${this.o.queueLimit}), dropped the oldest (${oldest?.event} ${oldest?.findingId}); ${this.dropped} dropped so far`,
      );
    }
    this.queue.push(item);
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  /** Resolves once the queue is empty (or the channel stopped). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    if (this.wait) {
      this.o.timers.clearTimeout(this.wait.handle);
      this.wait.wake();
    }
    await this.draining;
    if (this.queue.length > 0) this.o.log(`notifications to ${this.host}: ${this.queue.length} not sent (stopping)`);
  }

  private async drain(): Promise<void> {
    // The one being sent is out of the queue: the limit counts those still waiting.
    for (let item = this.queue.shift(); item; item = this.stopped ? undefined : this.queue.shift()) await this.deliver(item);
  }

  private async deliver(item: Pending): Promise<void> {
    let delay = this.o.backoffMs;
    for (let attempt = 1; !this.stopped; attempt++) {
      const outcome = await this.send(item);
      if (outcome.ok) {
        this.delivered++;
        return;
      }
      if (!outcome.retry || attempt >= this.o.maxAttempts) {
        this.o.log(
          `notifications to ${this.host}: gave up on ${item.event} ${item.findingId} after ${attempt} ${attempt === 1 ? "try" : "tries"} (${outcome.reason})`,
        );
        return;
      }
      const wait = Math.min(this.o.maxDelayMs, outcome.retryAfterMs ?? delay);
      delay *= 2;
      await new Promise<void>((wake) => {
        const handle = this.o.timers.setTimeout(() => {
          this.wait = undefined;
          wake();
        }, wait);
        (handle as { unref?: () => void } | undefined)?.unref?.();
        this.wait = { handle, wake };
      });
    }
  }

  private async send(item: Pending): Promise<{ ok: true } | { ok: false; retry: boolean; reason: string; retryAfterMs?: number }> {
    // A timer of our own, not AbortSignal.any([..., AbortSignal.timeout()]): in Node 20 the
    // timeout signal inside it can be garbage-collected before it fires (nodejs/node#57736), and
    // a receiver that never answers then holds its queue for ever.
    const request = new AbortController();
    const timer = setTimeout(() => request.abort(new DOMException("no answer in time", "TimeoutError")), this.o.timeoutMs);
    const stopping = () => request.abort(this.abort.signal.reason);
    if (this.abort.signal.aborted) stopping();
    else this.abort.signal.addEventListener("abort", stopping, { once: true });
    try {
      const response = await this.o.fetch(this.webhook.url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "coral-coordinator" },
        body: item.body,
        signal: request.signal,
        redirect: "error",
      });
      // The body is not needed; reading it frees the connection.
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return { ok: true };
      const after = retryAfterMs(response.headers.get("retry-after"), this.o.now());
      // 408 and 429 say "later"; 5xx may pass; any other 4xx will answer the same again.
      const retry = response.status >= 500 || response.status === 408 || response.status === 429;
      return { ok: false, retry, reason: `HTTP ${response.status}`, ...(after !== undefined ? { retryAfterMs: after } : {}) };
    } catch (error) {
      const e = error as { name?: string; cause?: { code?: string } };
      const reason =
        e.name === "TimeoutError"
          ? `no answer within ${this.o.timeoutMs / 1000} s`
          : (e.cause?.code ?? (error instanceof Error ? error.name : "failed"));
      return { ok: false, retry: true, reason };
    } finally {
      clearTimeout(timer);
      this.abort.signal.removeEventListener("abort", stopping);
    }
  }
}

export class Notifier {
  private readonly channels: Channel[];
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly options: NotifierOptions) {
    const o = {
      ...DEFAULTS,
      timers: globalTimers,
      now: Date.now,
      fetch: globalThis.fetch,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
      log: options.log,
    } as Required<Omit<NotifierOptions, "config" | "bus">>;
    this.channels = options.config.webhooks.map((w) => new Channel(w, o));
  }

  /** The webhooks' hosts, for a start-up line. */
  get hosts(): string[] {
    return this.channels.map((c) => c.host);
  }

  start(): void {
    if (this.unsubscribe || this.channels.length === 0) return;
    this.unsubscribe = this.options.bus.on("finding.changed", (change) => this.onChange(change));
  }

  /** Stops following the bus, abandons requests under way and waits for the queues' loops to end. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await Promise.all(this.channels.map((c) => c.stop()));
  }

  /** Resolves once every queue is empty: for tests, and for a stop that wants to flush first. */
  async idle(): Promise<void> {
    await Promise.all(this.channels.map((c) => c.idle()));
  }

  /** What each webhook has delivered and dropped so far. */
  stats(): Array<{ host: string; delivered: number; dropped: number }> {
    return this.channels.map((c) => ({ host: c.host, delivered: c.delivered, dropped: c.dropped }));
  }

  private onChange(change: Change): void {
    // On the bus's thread: never throws, never waits.
    try {
      if (change.change === "updated") return;
      const event: Event = change.change === "opened" ? "finding.opened" : "finding.resolved";
      const { finding } = change;
      for (const channel of this.channels) {
        if (rank(finding.severity) > rank(channel.webhook.minSeverity)) continue;
        channel.push({ event, findingId: finding.id, body: JSON.stringify(notificationBody(channel.webhook.format, event, finding)) });
      }
    } catch (error) {
      this.options.log(`notifications: could not queue a finding: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
