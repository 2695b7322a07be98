import { addRefusals, type Db } from "./db/store.js";

const FLUSH_EVERY_MS = 10_000;

/**
 * Counts refusals by code in memory and adds them to D1 at most every 10 s per
 * isolate. Writing a row per refusal would let anyone who sends junk buy D1
 * writes on the operator's bill; batching bounds that to a few writes a minute.
 */
export class RefusalCounter {
  private pending = new Map<string, number>();
  private lastFlush = 0;

  count(code: string): void {
    this.pending.set(code, (this.pending.get(code) ?? 0) + 1);
  }

  due(now: number): boolean {
    return this.pending.size > 0 && now - this.lastFlush >= FLUSH_EVERY_MS;
  }

  async flush(db: Db, now: number): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.lastFlush = now;
    try {
      await addRefusals(db, batch, now);
    } catch (error) {
      // Keep the counts for the next flush rather than lose them.
      for (const [code, n] of batch) this.pending.set(code, (this.pending.get(code) ?? 0) + n);
      throw error;
    }
  }
}

export const refusalCounter = new RefusalCounter();
