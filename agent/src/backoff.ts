/** A delay that doubles at each use, up to a ceiling, and starts over when things work again. */
export class Backoff {
  private current: number;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {
    this.current = initialMs;
  }

  /** The delay to wait now; the next one is twice as long. */
  next(): number {
    const delay = this.current;
    this.current = Math.min(this.maxMs, this.current * 2);
    return delay;
  }

  /** The delay next() would give, without using it. */
  peek(): number {
    return this.current;
  }

  reset(): void {
    this.current = this.initialMs;
  }
}
