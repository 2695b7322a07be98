/**
 * The `sdk` collector: services that embed the Coral SDK, asked directly.
 *
 * Each collect asks the configured ports and, with `probe` (every `probeEveryMs`), a bounded
 * number of the ports local processes listen on. A port whose server does not speak
 * `coral.sdk.v1` (UNIMPLEMENTED, a refused connection, something that is not gRPC) means "no
 * SDK here", not "down". A probed port is then not asked again for ten minutes; a configured
 * one is asked at every collect, since an agent that starts at boot starts before the apps it
 * is told to find. For each SDK service it reads Info, Config and Checks at every collect (a
 * new version is a deploy), and keeps a `grpc.health.v1` Watch open, so that a health change
 * becomes an event as it happens rather than at the next collect.
 *
 * Services carry the same subject id as the passive collector gives them (found through
 * the pid the SDK reports), with `source: sdk`: the coordinator sees one service, observed
 * both ways.
 */
import { createHash } from "node:crypto";
import { healthV1, sdkV1 } from "@coral-mesh/sdk-proto/grpc";
import { type ClientReadableStream, credentials, type ServiceError, status } from "@grpc/grpc-js";
import * as z from "zod";
import { definePlugin, PLUGIN_API_VERSION, type PluginContext, type PluginStateStore, type Subject } from "../contract.js";
import { serviceOf } from "../passive/index.js";
import { ProcReader } from "../passive/proc.js";

const options = z.strictObject({
  /** Ports to ask first; the SDK's default is 50151. */
  ports: z.array(z.number().int().min(1).max(65535)).default([50151]),
  /** Also try the ports local processes listen on (loopback or any address). */
  probe: z.boolean().default(true),
  /** At most this many new ports tried per probe. */
  probeLimit: z.number().int().min(0).max(1024).default(32),
  /**
   * How often the listening ports are looked through for new ones, in ms (the configured
   * `ports` are asked at every collect). Reading the TCP tables walks the kernel's whole
   * connection hash table: at every 10 s collect, that was most of this collector's cost.
   */
  probeEveryMs: z.number().int().min(0).max(3_600_000).default(30_000),
  /** Deadline of each call. */
  timeoutMs: z.number().int().min(50).max(10_000).default(1_000),
});
type Options = z.infer<typeof options>;

const NOT_SDK_FOR_MS = 10 * 60_000;
/**
 * A probe is due this much before `probeEveryMs` is over. Collects fall on a grid, but each
 * starts a few ms late by its own amount: at exactly 30 s, a probe whose collect started 5 ms
 * late was followed by one that started 1 ms late and was 4 ms short, so the probe waited for
 * the collect after, 40 s in all.
 */
const PROBE_SLACK_MS = 1_000;
/** The persisted version of each SDK service, by name: a new one is a deploy, across agent restarts too. */
const VERSIONS_KEY = "versions";
const HEALTH: readonly string[] = ["unknown", "serving", "not_serving", "service_unknown"];
const CHECK: readonly string[] = ["unspecified", "pass", "fail", "timeout", "pending"];

interface Known {
  port: number;
  subject: Subject;
  sdk: sdkV1.CoralSdkServiceClient;
  health: healthV1.HealthClient;
  watch: ClientReadableStream<healthV1.HealthCheckResponse> | undefined;
  status: string;
  checks: Map<string, string>;
  configHash: string | undefined;
  version: string;
  build: string;
}

interface Instance {
  known: Map<number, Known>;
  notSdk: Map<number, number>;
  reader: ProcReader;
  /** When the listening ports were last looked through (0: never). */
  probedAt: number;
}

const instances = new WeakMap<PluginStateStore, Instance>();

export default definePlugin({
  name: "sdk",
  version: "0.1.0",
  apiVersion: PLUGIN_API_VERSION,
  description: "Services that embed the Coral SDK: health as it changes, info, config and checks.",
  intervalMs: 10_000,
  options,
  async collect(ctx) {
    let instance = instances.get(ctx.state);
    if (!instance) {
      instance = { known: new Map(), notSdk: new Map(), reader: new ProcReader(ctx.procRoot), probedAt: 0 };
      instances.set(ctx.state, instance);
    }
    await collect(ctx, instance);
  },
  stop(ctx) {
    const instance = instances.get(ctx.state);
    if (!instance) return;
    for (const known of instance.known.values()) forget(known);
    instance.reader.close();
    instances.delete(ctx.state);
  },
});

function unary<Res>(client: object, method: string, timeoutMs: number): Promise<Res> {
  const fn = (client as Record<string, (...args: unknown[]) => void>)[method];
  return new Promise((resolve, reject) =>
    fn?.call(client, {}, { deadline: Date.now() + timeoutMs }, (error: ServiceError | null, response: Res) =>
      error ? reject(error) : resolve(response),
    ),
  );
}

function forget(known: Known): void {
  known.watch?.cancel();
  known.sdk.close();
  known.health.close();
}

async function collect(ctx: PluginContext<Options>, instance: Instance): Promise<void> {
  const now = ctx.clock.now();
  for (const [port, until] of instance.notSdk) if (until <= now) instance.notSdk.delete(port);

  const candidates = new Set(ctx.options.ports);
  if (ctx.options.probe && (instance.probedAt === 0 || now - instance.probedAt >= ctx.options.probeEveryMs - PROBE_SLACK_MS)) {
    instance.probedAt = now;
    for (const s of instance.reader.tcpSockets()) {
      const reachable = ["0.0.0.0", "::"].includes(s.localAddress) || s.localAddress.startsWith("127.") || s.localAddress === "::1";
      if (s.state === "LISTEN" && reachable) candidates.add(s.localPort);
    }
  }
  const fresh = [...candidates].filter((p) => !instance.known.has(p) && !instance.notSdk.has(p)).slice(0, ctx.options.probeLimit);
  await Promise.all(fresh.map((port) => discover(ctx, instance, port)));
  await Promise.all([...instance.known.values()].map((known) => refresh(ctx, instance, known)));
}

async function discover(ctx: PluginContext<Options>, instance: Instance, port: number): Promise<void> {
  const address = `127.0.0.1:${port}`;
  const sdk = new sdkV1.CoralSdkServiceClient(address, credentials.createInsecure());
  let info: sdkV1.InfoResponse;
  try {
    info = await unary<sdkV1.InfoResponse>(sdk, "info", ctx.options.timeoutMs);
  } catch {
    // UNIMPLEMENTED, refused, or not gRPC at all: no SDK on this port (yet, for a configured one).
    sdk.close();
    if (!ctx.options.ports.includes(port)) instance.notSdk.set(port, ctx.clock.now() + NOT_SDK_FOR_MS);
    return;
  }
  const subject = subjectFor(instance.reader, info);
  const known: Known = {
    port,
    subject,
    sdk,
    health: new healthV1.HealthClient(address, credentials.createInsecure()),
    watch: undefined,
    status: "unknown",
    checks: new Map(),
    configHash: undefined,
    version: info.version,
    build: info.build,
  };
  instance.known.set(port, known);
  observed(ctx, known, info);
  watch(ctx, known);
}

/** `service.observed` for what Info said; and `service.deployed` first when its version or build is new. */
function observed(ctx: PluginContext<Options>, known: Known, info: sdkV1.InfoResponse): void {
  const versions = ctx.state.get<Record<string, { version: string; build: string }>>(VERSIONS_KEY) ?? {};
  const before = versions[info.serviceName];
  if (before && (before.version !== info.version || before.build !== info.build)) {
    ctx.emit.event({
      kind: "service.deployed",
      subject: known.subject,
      attributes: { source: "sdk", from: before.version, to: info.version, version: info.version },
      evidence: { fromBuild: before.build, toBuild: info.build, startedAt: info.startedAtUnixMs },
    });
  }
  if (!before || before.version !== info.version || before.build !== info.build) {
    ctx.state.set(VERSIONS_KEY, { ...versions, [info.serviceName]: { version: info.version, build: info.build } });
  }
  ctx.emit.event({
    kind: "service.observed",
    subject: known.subject,
    attributes: {
      source: "sdk",
      port: String(known.port),
      version: info.version,
      sdk: info.sdk,
      ...(info.runtime ? { runtime: `${info.runtime.name} ${info.runtime.version}`, pid: String(info.runtime.pid) } : {}),
    },
    evidence: { build: info.build, metadata: info.metadata, startedAt: info.startedAtUnixMs },
  });
}

/** The passive collector's id for the SDK's process, when /proc shows it; else one of its own. */
function subjectFor(reader: ProcReader, info: sdkV1.InfoResponse): Subject {
  const process = info.runtime?.pid ? reader.process(info.runtime.pid) : undefined;
  if (process) return { kind: "service", id: serviceOf(process).key, name: info.serviceName };
  return { kind: "service", id: `sdk:${info.serviceName}`, name: info.serviceName };
}

function setHealth(ctx: PluginContext<Options>, known: Known, next: string): void {
  if (next === known.status) return;
  const previous = known.status;
  known.status = next;
  ctx.emit.event({ kind: "service.health_changed", subject: known.subject, attributes: { from: previous, to: next, source: "sdk" } });
}

/** Health as it changes: one Watch stream per service, reopened at the next collect if it ends. */
function watch(ctx: PluginContext<Options>, known: Known): void {
  const stream = known.health.watch({ service: "" });
  known.watch = stream;
  stream.on("data", (response: healthV1.HealthCheckResponse) => setHealth(ctx, known, HEALTH[response.status] ?? "unknown"));
  stream.on("error", () => {
    if (known.watch === stream) known.watch = undefined;
  });
  stream.on("end", () => {
    if (known.watch === stream) known.watch = undefined;
  });
}

async function refresh(ctx: PluginContext<Options>, instance: Instance, known: Known): Promise<void> {
  let checks: sdkV1.ChecksResponse;
  let config: sdkV1.ConfigResponse;
  let info: sdkV1.InfoResponse;
  try {
    [info, checks, config] = await Promise.all([
      unary<sdkV1.InfoResponse>(known.sdk, "info", ctx.options.timeoutMs),
      unary<sdkV1.ChecksResponse>(known.sdk, "checks", ctx.options.timeoutMs),
      unary<sdkV1.ConfigResponse>(known.sdk, "config", ctx.options.timeoutMs),
    ]);
  } catch (error) {
    if ((error as ServiceError).code === status.UNAVAILABLE) {
      // The service went away (or restarted without the SDK): say so, and look again later.
      setHealth(ctx, known, "unreachable");
      forget(known);
      instance.known.delete(known.port);
    }
    return;
  }
  if (info.version !== known.version || info.build !== known.build) {
    // Restarted between two collects with a new release: the channel reconnected on its own.
    known.version = info.version;
    known.build = info.build;
    known.subject = subjectFor(instance.reader, info);
    observed(ctx, known, info);
  }
  if (!known.watch) watch(ctx, known);
  for (const check of checks.checks) {
    const result = CHECK[check.status] ?? "unspecified";
    ctx.emit.metric({
      name: "service.check.passing",
      value: result === "pass" ? 1 : 0,
      subject: known.subject,
      labels: { check: check.name },
    });
    const before = known.checks.get(check.name);
    if (before !== undefined && before !== result) {
      ctx.emit.event({
        kind: "service.check_changed",
        subject: known.subject,
        attributes: { check: check.name, from: before, to: result },
        evidence: { message: check.message, durationMs: check.durationMs },
      });
    }
    known.checks.set(check.name, result);
  }
  ctx.emit.metric({ name: "service.serving", value: known.status === "serving" ? 1 : 0, subject: known.subject });
  // The configuration (as the SDK redacted it) when first seen and whenever it changes.
  const hash = createHash("sha256").update(config.json).digest("hex");
  if (hash !== known.configHash) {
    known.configHash = hash;
    ctx.emit.event({
      kind: "service.config",
      subject: known.subject,
      attributes: { redacted: String(config.redactedPaths.length) },
      evidence: { config: safeJson(config.json), redactedPaths: config.redactedPaths },
    });
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
