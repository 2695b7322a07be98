/**
 * Getting spooled batches to the coordinator: oldest first, one drain at a time, over the
 * report stream (or one call each, to a coordinator without it), acknowledged batches
 * dropped from the spool, and after a failure another try a few seconds later.
 */
import type { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { type ServiceError, status } from "@grpc/grpc-js";
import type { Clock, Timer } from "./clock.js";
import { describeError } from "./errors.js";
import type { EncodedReport } from "./report-stream.js";
import type { Spool } from "./spool.js";

/** A failed send is retried this long after. */
export const SEND_RETRY_MS = 5_000;
/** How long a report waits for its answer. */
const REPORT_TIMEOUT_MS = 10_000;
/** Batches per report. */
const BATCHES_PER_REPORT = 100;

/** The calls delivery makes on the coordinator. */
export interface ReportRpc {
  report(report: EncodedReport, timeoutMs: number): Promise<meshV1.ReportResponse>;
  reportOnStream(batches: Uint8Array[], timeoutMs: number): Promise<meshV1.ReportStreamResponse>;
}

export interface DeliveryOptions {
  spool: Pick<Spool, "pendingEncoded" | "ack" | "size">;
  rpc: ReportRpc;
  clock: Clock;
  log: (line: string) => void;
  /** The coordinator acknowledged a report (which counts as contact). */
  onAcked: () => void;
}

export class Delivery {
  private sending: Promise<void> | undefined;
  /** Sends again after a failed send. */
  private retryTimer: Timer | undefined;
  private streamReports = true;
  private failures = 0;
  /** Nothing is sent before the coordinator heard of this run (plugins start meanwhile). */
  private open = false;
  private stopped = false;

  constructor(private readonly options: DeliveryOptions) {}

  /** The coordinator knows this run now: batches may go. */
  start(): void {
    this.open = true;
  }

  /** No retry is armed after this; a send asked for still goes (what plugins emitted while stopping). */
  stop(): void {
    this.stopped = true;
    this.options.clock.clearTimeout(this.retryTimer);
  }

  /** Sends spooled batches, oldest first, until the spool is empty or a call fails; one drain at a time. */
  send(): Promise<void> {
    // `.finally` always runs asynchronously, so `sending` is cleared only after it was set.
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined;
    });
    return this.sending;
  }

  private async drain(): Promise<void> {
    if (!this.open) return;
    const { spool, log } = this.options;
    try {
      for (;;) {
        const batches = spool.pendingEncoded(BATCHES_PER_REPORT);
        if (batches.length === 0) return;
        const response = await this.report(batches);
        if (!response) continue; // the coordinator has no ReportStream: sent again, as a Report call
        spool.ack(response.ackedSequences);
        this.options.onAcked();
        if (this.failures > 0) log(`reports reach the coordinator again; ${spool.size.batches} batch(es) still spooled`);
        this.failures = 0;
      }
    } catch (error) {
      this.failures++;
      if (this.failures === 1) log(`sending reports failed (${describeError(error)}); they stay spooled and are retried`);
      if (!this.stopped && !this.retryTimer) {
        this.retryTimer = this.options.clock.setTimeout(() => {
          this.retryTimer = undefined;
          void this.send();
        }, SEND_RETRY_MS);
      }
    }
  }

  /** One report over the stream (or a call); undefined when the stream turned out not to be served. */
  private async report(batches: Uint8Array[]): Promise<meshV1.ReportResponse | undefined> {
    const { rpc, clock } = this.options;
    if (!this.streamReports) return rpc.report({ batches, sentAtUnixMs: clock.now() }, REPORT_TIMEOUT_MS);
    try {
      return await rpc.reportOnStream(batches, REPORT_TIMEOUT_MS);
    } catch (error) {
      if ((error as Partial<ServiceError>).code !== status.UNIMPLEMENTED) throw error;
      this.streamReports = false;
      this.options.log("the coordinator does not serve ReportStream (an older version); reporting one call per batch");
      return undefined;
    }
  }
}
