import { type ClientReadableStream, credentials, status as GrpcStatus, Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { healthV1, sdkV1 } from "../src/grpc.js";
import { type CoralSdk, type CoralSdkOptions, REDACTED, startCoralSdk } from "../src/sdk/index.js";

const { HealthCheckResponse_ServingStatus: Serving } = healthV1;
const running: CoralSdk[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((sdk) => sdk.close()));
});

async function start(options: Partial<CoralSdkOptions> = {}): Promise<CoralSdk> {
  const sdk = await startCoralSdk({ service: "checkout", version: "1.4.2", port: 0, handleSignals: false, ...options });
  running.push(sdk);
  return sdk;
}

function clients(sdk: CoralSdk) {
  const health = new healthV1.HealthClient(sdk.address, credentials.createInsecure());
  const coral = new sdkV1.CoralSdkServiceClient(sdk.address, credentials.createInsecure());
  const deadline = () => ({ deadline: Date.now() + 2_000 });
  const unary = <Req, Res>(fn: (req: Req, md: Metadata, opts: object, cb: (e: ServiceError | null, r: Res) => void) => unknown, req: Req) =>
    new Promise<Res>((resolve, reject) =>
      fn(req, new Metadata(), deadline(), (error, response) => (error ? reject(error) : resolve(response))),
    );
  return {
    check: (service = "") => unary(health.check.bind(health), { service }),
    info: () => unary(coral.info.bind(coral), {}),
    config: () => unary(coral.config.bind(coral), {}),
    checks: () => unary(coral.checks.bind(coral), {}),
    watch: (service = "") => health.watch({ service }),
    close: () => {
      health.close();
      coral.close();
    },
  };
}

/** Collects what a Watch stream sends, and lets a test wait for the next message. */
function recorder(stream: ClientReadableStream<healthV1.HealthCheckResponse>) {
  const seen: healthV1.HealthCheckResponse_ServingStatus[] = [];
  let waiting: (() => void) | undefined;
  let ended = false;
  stream.on("data", (m: healthV1.HealthCheckResponse) => {
    seen.push(m.status);
    waiting?.();
  });
  stream.on("error", () => {});
  stream.on("end", () => {
    ended = true;
    waiting?.();
  });
  const until = async (predicate: () => boolean) => {
    const limit = Date.now() + 3_000;
    while (!predicate()) {
      if (Date.now() > limit) throw new Error(`timed out; saw ${JSON.stringify(seen)}`);
      await new Promise<void>((resolve) => {
        waiting = resolve;
        setTimeout(resolve, 50);
      });
    }
  };
  return { seen, until, ended: () => ended };
}

describe("the Coral SDK over real gRPC", () => {
  it("answers Info with the service, version, build and runtime", async () => {
    const sdk = await start({ build: "abc123", metadata: { team: "payments" } });
    const c = clients(sdk);
    const info = await c.info();
    expect(info).toMatchObject({ serviceName: "checkout", version: "1.4.2", build: "abc123", metadata: { team: "payments" } });
    expect(info.runtime).toMatchObject({ name: "node", version: process.versions.node, pid: process.pid });
    expect(info.sdk).toMatch(/^coral-sdk-node\/\d+\.\d+\.\d+/);
    c.close();
  });

  it("answers Config with secrets redacted, including ones the app names", async () => {
    const sdk = await start({
      config: {
        port: 8080,
        database: { url: "postgres://app:hunter2@db.internal:5432/shop", password: "hunter2", pool: 10 },
        stripe: { apiKey: "sk_live_123", webhookSecret: "whsec_1" },
        auth: { enabled: true },
        featureFlags: ["a", "b"],
        internal: { salt: "pepper" },
        GITHUB_TOKEN: "ghp_x",
      },
      redact: ["internal.salt"],
    });
    const c = clients(sdk);
    const response = await c.config();
    const config = JSON.parse(response.json) as Record<string, Record<string, unknown>>;
    expect(response.json).not.toMatch(/hunter2|sk_live|whsec|pepper|ghp_x/);
    expect(config.database).toEqual({ url: `postgres://app:${REDACTED}@db.internal:5432/shop`, password: REDACTED, pool: 10 });
    expect(config.port).toBe(8080);
    expect(config.featureFlags).toEqual(["a", "b"]);
    expect(response.redactedPaths.sort()).toEqual(
      ["GITHUB_TOKEN", "auth", "database.password", "database.url", "internal.salt", "stripe.apiKey", "stripe.webhookSecret"].sort(),
    );
    c.close();
  });

  it("answers Check for the whole app and by service name, and NOT_FOUND for another name", async () => {
    const sdk = await start({ checks: { db: () => true } });
    const c = clients(sdk);
    expect((await c.check("")).status).toBe(Serving.SERVING);
    expect((await c.check("checkout")).status).toBe(Serving.SERVING);
    const error = (await c.check("inventory").catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(GrpcStatus.NOT_FOUND);
    expect(error.details).toContain('unknown service "inventory"');
    c.close();
  });

  it("pushes health transitions to Watch as checks fail and recover", async () => {
    let dbUp = true;
    const sdk = await start({ checks: { db: () => ({ ok: dbUp, message: dbUp ? "connected" : "connection refused" }) } });
    const c = clients(sdk);
    const watch = recorder(c.watch("checkout"));
    await watch.until(() => watch.seen.length === 1);
    expect(watch.seen).toEqual([Serving.SERVING]);

    dbUp = false;
    await sdk.runChecks();
    await watch.until(() => watch.seen.length === 2);
    expect(watch.seen[1]).toBe(Serving.NOT_SERVING);
    expect((await c.checks()).checks[0]).toMatchObject({
      name: "db",
      status: sdkV1.CheckStatus.CHECK_STATUS_FAIL,
      message: "connection refused",
    });

    dbUp = true;
    await sdk.runChecks();
    await watch.until(() => watch.seen.length === 3);
    expect(watch.seen[2]).toBe(Serving.SERVING);
    c.close();
  });

  it("reports a hung check as a timeout without ever hanging a probe", async () => {
    const sdk = await start({ checks: { fast: () => undefined, stuck: { run: () => new Promise(() => {}), timeoutMs: 100 } } });
    const c = clients(sdk);
    const started = Date.now();
    expect((await c.check()).status).toBe(Serving.NOT_SERVING);
    expect(Date.now() - started).toBeLessThan(1_000);
    const results = (await c.checks()).checks;
    expect(results.find((r) => r.name === "stuck")).toMatchObject({ status: sdkV1.CheckStatus.CHECK_STATUS_TIMEOUT, timeoutMs: 100 });
    expect(results.find((r) => r.name === "fast")?.status).toBe(sdkV1.CheckStatus.CHECK_STATUS_PASS);
    // The next round does not pile a second copy of the hung check on top of the first.
    const again = await sdk.runChecks();
    expect(again.find((r) => r.name === "stuck")?.message).toContain("from an earlier round");
    c.close();
  });

  it("reports a check that throws as failed, with its message", async () => {
    const sdk = await start({
      checks: {
        cache: () => {
          throw new Error("redis: ECONNREFUSED");
        },
      },
    });
    const c = clients(sdk);
    expect((await c.checks()).checks[0]).toMatchObject({ status: sdkV1.CheckStatus.CHECK_STATUS_FAIL, message: "redis: ECONNREFUSED" });
    expect((await c.check()).status).toBe(Serving.NOT_SERVING);
    c.close();
  });

  it("lets the app mark itself not serving, e.g. while draining", async () => {
    const sdk = await start();
    const c = clients(sdk);
    sdk.setServing(false);
    expect((await c.check()).status).toBe(Serving.NOT_SERVING);
    sdk.setServing(true);
    expect((await c.check()).status).toBe(Serving.SERVING);
    c.close();
  });

  it("tells a Watch of an unknown service SERVICE_UNKNOWN, as the health protocol says", async () => {
    const sdk = await start();
    const c = clients(sdk);
    const watch = recorder(c.watch("inventory"));
    await watch.until(() => watch.seen.length === 1);
    expect(watch.seen).toEqual([Serving.SERVICE_UNKNOWN]);
    c.close();
  });

  it("closes with open Watch streams: they hear NOT_SERVING, then end", async () => {
    const sdk = await startCoralSdk({ service: "checkout", version: "1", port: 0, handleSignals: false });
    const c = clients(sdk);
    const watches = [recorder(c.watch()), recorder(c.watch("checkout"))];
    for (const w of watches) await w.until(() => w.seen.length === 1);
    await sdk.close();
    for (const w of watches) {
      await w.until(() => w.ended());
      expect(w.seen).toEqual([Serving.SERVING, Serving.NOT_SERVING]);
    }
    await sdk.close(); // twice is fine
    const error = (await c.check().catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(GrpcStatus.UNAVAILABLE);
    c.close();
  });

  it("refuses bad options with the option's name", async () => {
    await expect(startCoralSdk({ service: "", version: "1" })).rejects.toThrow(/option service/);
    await expect(startCoralSdk({ service: "a", version: "1", checks: { "bad name!": () => true } })).rejects.toThrow(/option checks/);
    await expect(startCoralSdk({ service: "a", version: "1", colour: "red" } as never)).rejects.toThrow(/Unrecognized key/);
  });

  it("says which port is taken and how to pick another", async () => {
    const first = await start();
    await expect(startCoralSdk({ service: "b", version: "1", port: first.port, handleSignals: false })).rejects.toThrow(
      new RegExp(`could not listen on 127\\.0\\.0\\.1:${first.port}.*CORAL_SDK_PORT`),
    );
  });
});
