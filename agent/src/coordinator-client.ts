/**
 * The agent's gRPC channel to the coordinator's AgentService: unary calls with a deadline,
 * the report stream, and a fresh channel when the old one may be stuck.
 */
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { credentials, Metadata, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { type EncodedReport, type ReportCall, ReportStream } from "./report-stream.js";
import { encodeReportRequest } from "./spool.js";

/** The coordinator's AgentService, whose `report` and `reportStream` take an `EncodedReport` (see encodeReportRequest). */
const encoded = (value: EncodedReport) => encodeReportRequest(value.batches, value.sentAtUnixMs);
const AgentClient = makeGenericClientConstructor(
  {
    ...meshV1.AgentServiceService,
    report: { ...meshV1.AgentServiceService.report, requestSerialize: encoded },
    reportStream: { ...meshV1.AgentServiceService.reportStream, requestSerialize: encoded },
  },
  "coral.mesh.v1.AgentService",
) as unknown as typeof meshV1.AgentServiceClient;

export class CoordinatorClient {
  private client: meshV1.AgentServiceClient;
  /** Reports go over one stream (see ReportStream); `report` is for a coordinator without it. */
  private readonly reports: ReportStream;

  /** `address` is host:port of the agent service; `agentName` goes with every call. */
  constructor(
    private readonly address: string,
    private readonly agentName: string,
  ) {
    this.client = this.newClient();
    this.reports = new ReportStream(() => (this.client.reportStream as unknown as (metadata: Metadata) => ReportCall)(this.metadata()));
  }

  register(request: meshV1.RegisterRequest, timeoutMs: number): Promise<meshV1.RegisterResponse> {
    return this.call("register", request, timeoutMs);
  }

  heartbeat(request: meshV1.HeartbeatRequest, timeoutMs: number): Promise<meshV1.HeartbeatResponse> {
    return this.call("heartbeat", request, timeoutMs);
  }

  /** One report as a call of its own. */
  report(report: EncodedReport, timeoutMs: number): Promise<meshV1.ReportResponse> {
    return this.call("report", report, timeoutMs);
  }

  /** One report over the stream. */
  reportOnStream(batches: Uint8Array[], timeoutMs: number): Promise<meshV1.ReportStreamResponse> {
    return this.reports.send(batches, timeoutMs);
  }

  /**
   * A new channel. One whose connection died with the tunnel (a coordinator restart, a cut
   * cable) may sit in TCP's retransmission backoff for half a minute after the tunnel is
   * back; a new one connects at once.
   */
  renew(): void {
    this.close();
    this.client = this.newClient();
  }

  close(): void {
    this.reports.close();
    this.client.close();
  }

  private newClient(): meshV1.AgentServiceClient {
    return new AgentClient(this.address, credentials.createInsecure(), {
      // grpc-js backs off up to 2 minutes between reconnects by default: after the
      // coordinator restarts, the agent would sit that long on a tunnel that works again.
      "grpc.initial_reconnect_backoff_ms": 500,
      "grpc.max_reconnect_backoff_ms": 5_000,
    });
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    metadata.set("coral-agent", this.agentName);
    return metadata;
  }

  private call<Req, Res>(method: "register" | "heartbeat" | "report", request: Req, timeoutMs: number): Promise<Res> {
    const metadata = this.metadata();
    const fn = this.client[method] as unknown as (
      request: Req,
      metadata: Metadata,
      options: { deadline: number },
      callback: (error: ServiceError | null, response: Res) => void,
    ) => void;
    return new Promise((resolve, reject) =>
      fn.call(this.client, request, metadata, { deadline: Date.now() + timeoutMs }, (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
  }
}
