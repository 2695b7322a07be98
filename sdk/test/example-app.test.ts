import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { healthV1, sdkV1 } from "@coral-mesh/sdk-proto/grpc";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";

const appPath = new URL("../../fixtures/example-app/server.mjs", import.meta.url).pathname;
let child: ChildProcess | undefined;

afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** Starts the example app as a user would, reading the ports it prints. */
async function startApp(): Promise<{ sdk: string; http: string; output: () => string }> {
  // The app imports @coral-mesh/sdk; tsx and the coral-source condition let it run from source.
  child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", appPath], {
    env: { ...process.env, PORT: "0", CORAL_SDK_PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const sdk = /coral sdk listening on (\S+)/.exec(output)?.[1];
    const http = /http listening on (\S+)/.exec(output)?.[1];
    if (sdk && http) return { sdk, http, output: () => output };
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`example app did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function call<Req, Res>(
  fn: (req: Req, md: Metadata, opts: object, cb: (e: ServiceError | null, r: Res) => void) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, new Metadata(), { deadline: Date.now() + 3_000 }, (e, r) => (e ? reject(e) : resolve(r))),
  );
}

describe("the example app from fixtures/", () => {
  it("tells Coral who it is, its redacted config and its health, and follows the database check", async () => {
    const app = await startApp();
    const coral = new sdkV1.CoralSdkServiceClient(app.sdk, credentials.createInsecure());
    const health = new healthV1.HealthClient(app.sdk, credentials.createInsecure());

    const info = await call(coral.info.bind(coral), {});
    expect(info).toMatchObject({ serviceName: "example-shop", version: "1.0.0" });
    const config = await call(coral.config.bind(coral), {});
    expect(config.json).not.toMatch(/s3cret|pk_test_example/);
    expect(config.redactedPaths.sort()).toEqual(["database.url", "paymentsApiKey"]);
    expect((await call(health.check.bind(health), { service: "example-shop" })).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.SERVING,
    );

    const statuses: number[] = [];
    const watch = health.watch({ service: "" });
    watch.on("data", (m: healthV1.HealthCheckResponse) => statuses.push(m.status));
    watch.on("error", () => {});
    await fetch(`http://${app.http}/toggle-db`);
    const deadline = Date.now() + 5_000;
    while (!statuses.includes(healthV1.HealthCheckResponse_ServingStatus.NOT_SERVING) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(statuses).toEqual([healthV1.HealthCheckResponse_ServingStatus.SERVING, healthV1.HealthCheckResponse_ServingStatus.NOT_SERVING]);
    watch.cancel();
    coral.close();
    health.close();
  }, 30_000);

  it("stops cleanly on SIGTERM, letting the app finish its own shutdown", async () => {
    const app = await startApp();
    child?.kill("SIGTERM");
    const [code, signal] = (await once(child as ChildProcess, "exit")) as [number | null, string | null];
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(app.output()).toContain("example-app stopped");
  }, 30_000);

  it("keeps Node's default on SIGTERM when the app has no handler: the SDK closes, then the process ends", async () => {
    const script = `import { startCoralSdk } from "@coral-mesh/sdk";
const sdk = await startCoralSdk({ service: "bare", version: "1", port: 0 });
console.log("coral sdk listening on " + sdk.address + " http listening on -");
setInterval(() => {}, 1000);`;
    child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", "--input-type=module", "-e", script], {
      cwd: new URL("../..", import.meta.url).pathname,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
    const deadline = Date.now() + 20_000;
    while (!output.includes("coral sdk listening") && Date.now() < deadline && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 50));
    expect(output).toContain("coral sdk listening");
    child.kill("SIGTERM");
    const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
    expect({ code, signal }).toEqual({ code: null, signal: "SIGTERM" });
  }, 30_000);

  it("runs the snippet in docs/sdk.md as pasted", async () => {
    const docs = readFileSync(new URL("../../docs/sdk.md", import.meta.url), "utf8");
    const snippet = /```js\n([\s\S]*?)```/.exec(docs)?.[1];
    expect(snippet).toContain("startCoralSdk");
    child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", "--input-type=module", "-e", snippet as string], {
      cwd: new URL("../..", import.meta.url).pathname,
      env: { ...process.env, CORAL_SDK_PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
    const deadline = Date.now() + 20_000;
    while (!/listening on (\S+)/.test(output) && Date.now() < deadline && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 50));
    const address = /listening on (\S+)/.exec(output)?.[1];
    expect(address, output).toBeDefined();
    const coral = new sdkV1.CoralSdkServiceClient(address as string, credentials.createInsecure());
    expect(await call(coral.info.bind(coral), {})).toMatchObject({ serviceName: "checkout", version: "1.4.2" });
    const checks = await call(coral.checks.bind(coral), {});
    expect(checks.checks).toMatchObject([{ name: "disk", status: sdkV1.CheckStatus.CHECK_STATUS_PASS }]);
    coral.close();
    child.kill("SIGTERM");
    await once(child, "exit");
  }, 30_000);
});
