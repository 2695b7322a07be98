/**
 * Fetches join requests from discovery. Requests only arrive when someone holds an invite,
 * so it polls every quarter second for ten minutes after a token is made or a join happens,
 * every 5 s while any token is usable, and every 30 s otherwise: a join waits a quarter
 * second at most while one is expected, and an idle mesh costs discovery almost nothing.
 */
import { and, gt, isNull, lt } from "drizzle-orm";
import type { Store } from "../store/db.js";
import { tokens } from "../store/schema.js";
import type { Enrollment } from "./enrollment.js";

/** How often join requests are fetched from discovery: quickly only while a join is likely. */
export const JOIN_POLL = { eagerMs: 250, eagerForMs: 10 * 60_000, activeTokenMs: 5_000, idleMs: 30_000 } as const;

export class JoinPoller {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = true;
  private eagerUntil = 0;
  private lastError: string | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly enrollment: Pick<Enrollment, "pollOnce">,
    private readonly db: Store,
    private readonly log: (line: string) => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.eagerUntil = Date.now() + JOIN_POLL.eagerForMs;
    this.schedule(0);
  }

  /** A token was just made: look often, starting now. */
  hurry(): void {
    this.eagerUntil = Date.now() + JOIN_POLL.eagerForMs;
    if (!this.running && !this.stopped) this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.poll().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.schedule(this.interval());
      });
    }, delayMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    try {
      const results = await this.enrollment.pollOnce();
      if (results.length > 0) this.eagerUntil = Date.now() + JOIN_POLL.eagerForMs;
      if (this.lastError) this.log("join requests: discovery answers again");
      this.lastError = undefined;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (message !== this.lastError) this.log(`join requests: ${message} (will retry)`);
      this.lastError = message;
    }
  }

  private interval(): number {
    const now = Date.now();
    if (now < this.eagerUntil) return JOIN_POLL.eagerMs;
    const usable = this.db
      .select({ id: tokens.id })
      .from(tokens)
      .where(and(isNull(tokens.revokedAt), gt(tokens.expiresAt, now), lt(tokens.uses, tokens.maxUses)))
      .get();
    return usable ? JOIN_POLL.activeTokenMs : JOIN_POLL.idleMs;
  }
}
