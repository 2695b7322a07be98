import { discoveryLimits } from "@coral-mesh/sdk-proto";

/**
 * Signatures this isolate accepted within the freshness window. D1 already refuses
 * any replay that would change stored state (timestamps there are monotonic); this
 * cache also refuses exact replays of read-only and no-op requests without paying
 * a D1 write for each one.
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();

  constructor(private readonly maxEntries = 20_000) {}

  /** Records a signature; false when it was already seen and is still fresh. */
  remember(signature: string, timestamp: number, now: number): boolean {
    const known = this.seen.get(signature);
    if (known !== undefined && known > now) return false;
    if (this.seen.size >= this.maxEntries) this.evict(now);
    this.seen.set(signature, timestamp + discoveryLimits.signatureWindowMs);
    return true;
  }

  private evict(now: number): void {
    for (const [signature, expiry] of this.seen) {
      if (expiry <= now) this.seen.delete(signature);
    }
    // Still full of fresh entries: drop the oldest inserted (Map keeps insertion order).
    const excess = this.seen.size - Math.floor(this.maxEntries * 0.9);
    if (excess <= 0) return;
    let dropped = 0;
    for (const signature of this.seen.keys()) {
      if (dropped++ >= excess) break;
      this.seen.delete(signature);
    }
  }
}
