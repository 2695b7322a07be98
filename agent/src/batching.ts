/**
 * The batch under way: what plugins emit is collected into it, and it becomes a spooled
 * batch when a collect ends (flush) or, for what start/stop plugins emit outside a collect,
 * a moment after the first item arrived.
 */
import type { Emitter, Subject } from "@coral-mesh/agent-plugins";
import type { Clock, Timer } from "./clock.js";
import type { NewBatch } from "./spool.js";

const SUBJECT_KINDS = { agent: 1, service: 2, process: 3, host: 4 } as const;
/** How long what plugins emit outside a collect waits before it becomes a batch. */
export const FLUSH_DELAY_MS = 1_000;

export interface BatcherOptions {
  clock: Clock;
  /** Defaults to FLUSH_DELAY_MS. */
  flushDelayMs?: number;
  /** Takes each batch once it is complete (to the spool, then on its way). */
  onBatch: (batch: NewBatch) => void;
}

export class Batcher {
  private current: NewBatch = emptyBatch();
  /** Spools what a start/stop plugin emitted outside a collect, a moment later. */
  private flushTimer: Timer | undefined;

  constructor(private readonly options: BatcherOptions) {}

  /** Turns what plugins emitted since the last flush into a batch, if they emitted anything. */
  flush(): void {
    this.options.clock.clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batch = this.current;
    if (batch.events.length + batch.metrics.length + batch.connections.length === 0) return;
    this.current = emptyBatch();
    this.options.onBatch({ ...batch, createdAtUnixMs: this.options.clock.now() });
  }

  /** What one plugin emits goes into the batch under way, marked as that plugin's (`source`). */
  emitterFor(source: string): Emitter {
    const now = () => this.options.clock.now();
    const subject = (s: Subject | undefined) => (s ? { kind: SUBJECT_KINDS[s.kind], id: s.id, name: s.name ?? "" } : undefined);
    return {
      event: (e) => {
        this.flushSoon();
        this.current.events.push({
          kind: e.kind,
          timeUnixMs: e.time ?? now(),
          subject: subject(e.subject),
          attributes: e.attributes ?? {},
          evidenceJson: e.evidence === undefined ? "{}" : JSON.stringify(e.evidence),
          source,
        });
      },
      metric: (m) => {
        this.flushSoon();
        this.current.metrics.push({
          name: m.name,
          value: m.value,
          timeUnixMs: m.time ?? now(),
          subject: subject(m.subject),
          labels: m.labels ?? {},
          source,
        });
      },
      connection: (c) => {
        this.flushSoon();
        this.current.connections.push({
          protocol: c.protocol ?? "tcp",
          localAddress: c.localAddress,
          localPort: c.localPort,
          remoteAddress: c.remoteAddress,
          remotePort: c.remotePort,
          pid: c.pid ?? 0,
          processName: c.processName ?? "",
          subject: subject(c.subject),
          observedAtUnixMs: c.time ?? now(),
          source,
        });
      },
    };
  }

  private flushSoon(): void {
    this.flushTimer ??= this.options.clock.setTimeout(() => this.flush(), this.options.flushDelayMs ?? FLUSH_DELAY_MS);
  }
}

function emptyBatch(): NewBatch {
  return { createdAtUnixMs: 0, events: [], metrics: [], connections: [] };
}
