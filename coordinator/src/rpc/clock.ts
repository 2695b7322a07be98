/**
 * Each agent's clock offset (its clock minus the coordinator's), from the send times its
 * requests carry. A request's arrival minus its send time is the offset plus the network's
 * delay, and delay only ever adds: so the best estimate is the largest `sent - received` of
 * recent requests. Events keep the agent's own time; this lets them be ordered across hosts
 * without trusting every host's clock.
 */

const WINDOW = 16;
/** A new estimate is written only when it moved this much (a write per heartbeat is waste). */
const WRITE_WHEN_MOVED_MS = 5;

export class ClockOffsets {
  private readonly samples = new Map<string, number[]>();
  private readonly written = new Map<string, number>();

  constructor(private readonly persist: (agent: string, offsetMs: number) => void) {}

  /** One request's sample; `sentAt` 0 (an agent too old to send it) is no sample. */
  record(agent: string, sentAt: number, receivedAt: number): void {
    if (!sentAt) return;
    const window = this.samples.get(agent) ?? [];
    window.push(sentAt - receivedAt);
    if (window.length > WINDOW) window.shift();
    this.samples.set(agent, window);
    const estimate = Math.max(...window);
    const last = this.written.get(agent);
    if (last !== undefined && Math.abs(estimate - last) < WRITE_WHEN_MOVED_MS) return;
    this.written.set(agent, estimate);
    this.persist(agent, estimate);
  }

  /** A new run of the agent (its clock may have been set meanwhile): start afresh. */
  reset(agent: string): void {
    this.samples.delete(agent);
    this.written.delete(agent);
  }
}
