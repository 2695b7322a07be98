import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import {
  credentials,
  status as GrpcStatus,
  Metadata,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServiceError,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { type EncodedReport, type ReportCall, ReportStream } from "../src/report-stream.js";
import { encodeReportRequest } from "../src/spool.js";

type ServerStream = ServerDuplexStream<meshV1.ReportStreamRequest, meshV1.ReportStreamResponse>;

/** A coordinator that runs `onStream` for each ReportStream it is sent (or serves none). */
async function serve(onStream?: (call: ServerStream, index: number) => void) {
  const server = new Server();
  let streams = 0;
  const handlers: UntypedServiceImplementation = onStream ? { reportStream: (call: ServerStream) => onStream(call, streams++) } : {};
  server.addService({ reportStream: meshV1.AgentServiceService.reportStream }, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  const Client = makeGenericClientConstructor(
    {
      reportStream: { ...meshV1.AgentServiceService.reportStream, requestSerialize: (r: EncodedReport) => encodeReportRequest(r.batches) },
    },
    "coral.mesh.v1.AgentService",
  );
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const reports = new ReportStream(() => (client as unknown as { reportStream(md: Metadata): ReportCall }).reportStream(new Metadata()));
  cleanups.push(() => {
    reports.close();
    client.close();
    server.forceShutdown();
  });
  return { reports, streamsOpened: () => streams };
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

const encoded = (sequence: number) =>
  meshV1.Batch.encode({ sequence, createdAtUnixMs: 1, events: [], metrics: [], connections: [], droppedBefore: 0 }).finish();

/** Answers every request with the sequences in it. */
const acknowledging = (call: ServerStream) => {
  call.on("data", (request: meshV1.ReportStreamRequest) => call.write({ ackedSequences: request.batches.map((b) => b.sequence) }));
  call.on("end", () => call.end());
};

describe("reports over one ReportStream", () => {
  it("answers each report in order, all on one stream", async () => {
    const { reports, streamsOpened } = await serve(acknowledging);
    const answers = await Promise.all([reports.send([encoded(1), encoded(2)], 2_000), reports.send([encoded(3)], 2_000)]);
    expect(answers.map((a) => a.ackedSequences)).toEqual([[1, 2], [3]]);
    expect((await reports.send([encoded(4)], 2_000)).ackedSequences).toEqual([4]);
    expect(streamsOpened()).toBe(1);
  });

  it("fails what waits on a stream the coordinator ended, and opens a new one for the next report", async () => {
    const { reports, streamsOpened } = await serve((call, index) => {
      if (index > 0) return acknowledging(call);
      call.once("data", () => call.end()); // as a coordinator that stops does
    });
    await expect(reports.send([encoded(1)], 2_000)).rejects.toThrow("the coordinator ended the report stream");
    expect((await reports.send([encoded(1)], 2_000)).ackedSequences).toEqual([1]);
    expect(streamsOpened()).toBe(2);
  });

  it("gives up on an answer that does not come, cancelling the stream, and starts afresh", async () => {
    let cancelled = false;
    const { reports, streamsOpened } = await serve((call, index) => {
      if (index > 0) return acknowledging(call);
      call.on("cancelled", () => {
        cancelled = true;
      });
    });
    await expect(reports.send([encoded(1)], 200)).rejects.toThrow("no answer to a report within 200 ms");
    await expect.poll(() => cancelled).toBe(true);
    expect((await reports.send([encoded(1)], 2_000)).ackedSequences).toEqual([1]);
    expect(streamsOpened()).toBe(2);
  });

  it("passes the coordinator's refusal on with its code, as UNIMPLEMENTED from one that has no ReportStream", async () => {
    const refusing = await serve((call) => call.emit("error", { code: GrpcStatus.PERMISSION_DENIED, details: "not you" }));
    const refused = (await refusing.reports.send([encoded(1)], 2_000).catch((e: unknown) => e)) as ServiceError;
    expect(refused.code).toBe(GrpcStatus.PERMISSION_DENIED);
    const older = await serve();
    const unimplemented = (await older.reports.send([encoded(1)], 2_000).catch((e: unknown) => e)) as ServiceError;
    expect(unimplemented.code).toBe(GrpcStatus.UNIMPLEMENTED);
  });

  it("on close, fails what waits and ends the stream", async () => {
    let received = false;
    let ended = false;
    const { reports } = await serve((call) => {
      call.on("data", () => {
        received = true;
      });
      for (const event of ["end", "cancelled"]) call.on(event, () => (ended = true));
    });
    const waiting = reports.send([encoded(1)], 5_000);
    await expect.poll(() => received).toBe(true);
    reports.close();
    await expect(waiting).rejects.toThrow("the report stream was closed");
    await expect.poll(() => ended).toBe(true);
  });
});
