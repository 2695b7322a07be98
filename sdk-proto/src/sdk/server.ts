/**
 * The Coral SDK for Node: serves grpc.health.v1 and coral.sdk.v1 so that Coral's
 * `sdk` collector (and a Kubernetes gRPC probe) can ask an application how it is.
 */
import { hostname } from "node:os";
import {
  status as GrpcStatus,
  type handleServerStreamingCall,
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServerWritableStream,
} from "@grpc/grpc-js";
import * as z from "zod";
import packageJson from "../../package.json" with { type: "json" };
import {
  type CheckResult,
  CheckStatus,
  type ChecksRequest,
  type ChecksResponse,
  type ConfigRequest,
  type ConfigResponse,
  CoralSdkServiceService,
  type InfoRequest,
  type InfoResponse,
} from "../gen/coral/sdk/v1/sdk.js";
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
  HealthService,
} from "../gen/grpc/health/v1/health.js";
import { shutdownGracefully } from "../grpc-server.js";
import { type CheckDefinition, type CheckFunction, type CheckResultView, CheckRunner } from "./checks.js";
import { redactConfig } from "./redact.js";

/** The port the SDK listens on unless told otherwise (also `CORAL_SDK_PORT`). */
export const DEFAULT_SDK_PORT = 50151;
const SDK_NAME = `coral-sdk-node/${packageJson.version}`;

const checkSchema = z.union([
  z.custom<CheckFunction>((v) => typeof v === "function", "a check is a function, or { run, timeoutMs }"),
  z.strictObject({
    run: z.custom<CheckFunction>((v) => typeof v === "function", "run must be a function"),
    timeoutMs: z.number().int().positive().optional(),
  }),
]);

const optionsSchema = z.strictObject({
  /** The service's name, as Coral shows it. */
  service: z.string().min(1).max(128),
  version: z.string().min(1).max(128),
  build: z.string().max(256).optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  /** The effective configuration, or a function returning it (called on every `Config`). */
  config: z.union([z.record(z.string(), z.unknown()), z.custom<() => unknown>((v) => typeof v === "function")]).optional(),
  /** More keys (or dotted paths) to redact from `Config`, beyond the ones that look secret. */
  redact: z.array(z.string()).optional(),
  checks: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "a check name is letters, digits, . _ and -"), checkSchema).optional(),
  checkIntervalMs: z.number().int().min(100).optional(),
  checkTimeoutMs: z.number().int().positive().optional(),
  /** Where to listen; loopback by default. */
  host: z.string().optional(),
  /** 0 picks a free port. */
  port: z.number().int().min(0).max(65535).optional(),
  /** Close the SDK on SIGTERM and SIGINT (default true). */
  handleSignals: z.boolean().optional(),
});
export type CoralSdkOptions = z.input<typeof optionsSchema>;

export type ServingStatus = "SERVING" | "NOT_SERVING";

export interface CoralSdk {
  /** `host:port` the SDK listens on. */
  readonly address: string;
  readonly port: number;
  /** The overall health: serving only when every check passes and the app has not said otherwise. */
  status(): ServingStatus;
  /** Marks the app as not serving (e.g. while draining) or serving again. */
  setServing(serving: boolean): void;
  /** Runs every check now and returns the results. */
  runChecks(): Promise<CheckResultView[]>;
  /** Stops serving: open Watch streams get NOT_SERVING and end. Safe to call twice. */
  close(): Promise<void>;
}

export class CoralSdkOptionsError extends Error {
  override readonly name = "CoralSdkOptionsError";
}

/** Starts the SDK's gRPC server; resolves once it listens and the first round of checks has run. */
export async function startCoralSdk(input: CoralSdkOptions): Promise<CoralSdk> {
  const parsed = optionsSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CoralSdkOptionsError(`Coral SDK: option ${issue?.path.join(".") || "(options)"}: ${issue?.message}`);
  }
  const options = parsed.data;
  const host = options.host ?? process.env.CORAL_SDK_HOST ?? "127.0.0.1";
  const port = options.port ?? (process.env.CORAL_SDK_PORT ? Number(process.env.CORAL_SDK_PORT) : DEFAULT_SDK_PORT);
  const defaultTimeout = options.checkTimeoutMs ?? 2_000;
  const definitions: CheckDefinition[] = Object.entries(options.checks ?? {}).map(([name, check]) =>
    typeof check === "function"
      ? { name, run: check, timeoutMs: defaultTimeout }
      : { name, run: check.run, timeoutMs: check.timeoutMs ?? defaultTimeout },
  );
  const runner = new CheckRunner(definitions);
  const startedAt = Date.now();
  const watchers = new Set<{ call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>; known: boolean }>();
  let manualServing = true;
  let closed = false;
  let current: ServingStatus = "NOT_SERVING";

  const computeStatus = (): ServingStatus => (!closed && manualServing && runner.healthy ? "SERVING" : "NOT_SERVING");
  const publish = () => {
    const next = computeStatus();
    if (next === current) return;
    current = next;
    for (const watcher of watchers) if (watcher.known) watcher.call.write({ status: toWire(next) });
  };
  const isKnown = (service: string) => service === "" || service === options.service;

  const health = {
    check: ((call, callback) => {
      if (!isKnown(call.request.service)) {
        callback({
          code: GrpcStatus.NOT_FOUND,
          details: `unknown service "${call.request.service}"; this app serves "${options.service}" (or "" for the whole app)`,
        });
        return;
      }
      callback(null, { status: toWire(current) });
    }) satisfies handleUnaryCall<HealthCheckRequest, HealthCheckResponse>,
    watch: ((call) => {
      const known = isKnown(call.request.service);
      // As the health protocol says: an unknown service is reported in the stream, not as an error.
      call.write({ status: known ? toWire(current) : HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN });
      const watcher = { call, known };
      watchers.add(watcher);
      const forget = () => watchers.delete(watcher);
      call.on("cancelled", forget);
      call.on("close", forget);
    }) satisfies handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse>,
  };

  const sdk = {
    info: ((_call, callback) => {
      const response: InfoResponse = {
        serviceName: options.service,
        version: options.version,
        build: options.build ?? "",
        runtime: {
          name: "node",
          version: process.versions.node,
          platform: process.platform,
          arch: process.arch,
          pid: process.pid,
          hostname: hostname(),
        },
        metadata: options.metadata ?? {},
        sdk: SDK_NAME,
        startedAtUnixMs: startedAt,
      };
      callback(null, response);
    }) satisfies handleUnaryCall<InfoRequest, InfoResponse>,
    config: ((_call, callback) => {
      try {
        const raw = typeof options.config === "function" ? options.config() : (options.config ?? {});
        const { value, paths } = redactConfig(raw, options.redact);
        callback(null, { json: JSON.stringify(value), redactedPaths: paths });
      } catch (error) {
        callback({
          code: GrpcStatus.INTERNAL,
          details: `the app's config function failed: ${error instanceof Error ? error.message : String(error)}`,
        });
      }
    }) satisfies handleUnaryCall<ConfigRequest, ConfigResponse>,
    checks: ((_call, callback) => {
      callback(null, { checks: runner.latest.map(toCheckResult) });
    }) satisfies handleUnaryCall<ChecksRequest, ChecksResponse>,
  };

  const server = new Server();
  server.addService(HealthService, health);
  server.addService(CoralSdkServiceService, sdk);
  const boundPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(":") ? `[${host}]` : host}:${port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error
        ? reject(
            new Error(
              `Coral SDK could not listen on ${host}:${port}: ${error.message}. Set another port with { port } or CORAL_SDK_PORT (0 picks a free one).`,
            ),
          )
        : resolve(bound),
    ),
  );

  const runChecks = async () => {
    const results = await runner.runAll();
    publish();
    return results;
  };
  await runChecks();
  const interval = setInterval(() => void runChecks(), options.checkIntervalMs ?? 10_000);
  interval.unref();

  const onSignal = (signal: NodeJS.Signals) => {
    // Asked now, while the app's own listeners (if any) are still registered: when the
    // app handles the signal, it decides when to exit; otherwise keep Node's default (exit).
    const appHandlesSignal = process.listenerCount(signal) > 0;
    void instance.close().then(() => {
      if (!appHandlesSignal) process.kill(process.pid, signal);
    });
  };
  const handleSignals = options.handleSignals ?? true;
  if (handleSignals) {
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  }

  let closing: Promise<void> | undefined;
  const instance: CoralSdk = {
    address: `${host}:${boundPort}`,
    port: boundPort,
    status: () => current,
    setServing(serving) {
      manualServing = serving;
      publish();
    },
    runChecks,
    close() {
      closing ??= (async () => {
        clearInterval(interval);
        process.removeListener("SIGTERM", onSignal);
        process.removeListener("SIGINT", onSignal);
        closed = true;
        publish();
        for (const watcher of watchers) watcher.call.end();
        watchers.clear();
        await shutdownGracefully(server);
      })();
      return closing;
    },
  };
  return instance;
}

function toWire(status: ServingStatus): HealthCheckResponse_ServingStatus {
  return status === "SERVING" ? HealthCheckResponse_ServingStatus.SERVING : HealthCheckResponse_ServingStatus.NOT_SERVING;
}

function toCheckResult(view: CheckResultView): CheckResult {
  const status = {
    pending: CheckStatus.CHECK_STATUS_PENDING,
    pass: CheckStatus.CHECK_STATUS_PASS,
    fail: CheckStatus.CHECK_STATUS_FAIL,
    timeout: CheckStatus.CHECK_STATUS_TIMEOUT,
  }[view.status];
  return {
    name: view.name,
    status,
    message: view.message,
    durationMs: view.durationMs,
    checkedAtUnixMs: view.checkedAt,
    timeoutMs: view.timeoutMs,
  };
}
