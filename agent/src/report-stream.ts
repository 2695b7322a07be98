/**
 * Reports over one `ReportStream` call, kept open: each request written on it is answered, in
 * order, with the sequences the coordinator stored. A batch then costs the agent one message
 * on a stream it already has, where a `Report` call costs a new HTTP/2 stream and all of
 * grpc-js's per-call machinery: about a third of the agent's CPU at a 10 s interval.
 *
 * A stream that fails (an error, the coordinator ending it, no answer in time) fails every
 * request waiting on it and is dropped; the next send opens a new one. What was not
 * acknowledged stays spooled and is sent again, and the coordinator stores each (agent,
 * sequence) once.
 */
import type { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import type { ClientDuplexStream } from "@grpc/grpc-js";

/** A report as the agent sends it: the spool's batches, encoded as they were written. */
export interface EncodedReport {
  batches: Uint8Array[];
  /** The agent's clock as it sends (a clock-offset sample for the coordinator). */
  sentAtUnixMs?: number;
}

export type ReportCall = ClientDuplexStream<EncodedReport, meshV1.ReportStreamResponse>;

interface Waiting {
  resolve(response: meshV1.ReportStreamResponse): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class ReportStream {
  private call: ReportCall | undefined;
  private readonly waiting: Waiting[] = [];

  /** `open` starts a new `ReportStream` call (with the agent's metadata). */
  constructor(private readonly open: () => ReportCall) {}

  /** Sends one report; resolves with its answer, or rejects when the stream fails first or `timeoutMs` passes. */
  send(batches: Uint8Array[], timeoutMs: number): Promise<meshV1.ReportStreamResponse> {
    const call = this.call ?? this.start();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(call, new Error(`no answer to a report within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push({ resolve, reject, timer });
      call.write({ batches, sentAtUnixMs: Date.now() });
    });
  }

  /** Ends the stream (what waits on it fails); the next send opens a new one. */
  close(): void {
    if (this.call) this.fail(this.call, new Error("the report stream was closed"));
  }

  private start(): ReportCall {
    const call = this.open();
    this.call = call;
    call.on("data", (response: meshV1.ReportStreamResponse) => {
      const waiting = this.waiting.shift();
      if (!waiting) return;
      clearTimeout(waiting.timer);
      waiting.resolve(response);
    });
    call.on("error", (error: Error) => this.fail(call, error));
    call.on("end", () => this.fail(call, new Error("the coordinator ended the report stream")));
    return call;
  }

  private fail(call: ReportCall, error: Error): void {
    if (this.call !== call) return; // an old stream's last words
    this.call = undefined;
    call.cancel(); // nothing more is read from it; a no-op once it ended
    for (const waiting of this.waiting.splice(0)) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
  }
}
