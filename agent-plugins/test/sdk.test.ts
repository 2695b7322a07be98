import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { startCoralSdk } from "@coral-mesh/sdk-proto/sdk";
import { afterEach, describe, expect, it } from "vitest";
import sdk from "../src/sdk/index.js";
import { createTestContext, lifecycleSuite, MemoryState } from "../src/testing.js";

const appPath = new URL("../../fixtures/example-app/server.mjs", import.meta.url).pathname;
let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
});

/** The example app from the SDK issue, started as a user would; resolves with its two ports. */
async function startApp(): Promise<{ sdkPort: number; http: string }> {
  child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", appPath], {
    env: { ...process.env, PORT: "0", CORAL_SDK_PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const sdkAddress = /coral sdk listening on \S+:(\d+)/.exec(output)?.[1];
    const http = /http listening on (\S+)/.exec(output)?.[1];
    if (sdkAddress && http) return { sdkPort: Number(sdkAddress), http };
    if (Date.now() > deadline) throw new Error(`the example app did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

const until = async (what: string, condition: () => boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe("the sdk collector, against the example app", () => {
  it("finds the app by probing local ports, follows its health as it changes, and reads checks and config", async () => {
    const app = await startApp();
    const state = new MemoryState();
    const ctx = createTestContext(sdk, { state, options: { ports: [], probe: true, probeLimit: 1024 } });
    try {
      await sdk.collect?.(ctx as never);
      const observed = ctx.emit.events.filter((e) => e.kind === "service.observed");
      expect(observed).toEqual([
        expect.objectContaining({
          subject: { kind: "service", id: `script:node ${appPath}`, name: "example-shop" },
          attributes: expect.objectContaining({ source: "sdk", port: String(app.sdkPort), version: "1.0.0", pid: String(child?.pid) }),
        }),
      ]);
      // Health arrives through Watch, without waiting for a collect.
      await until("serving", () => ctx.emit.events.some((e) => e.kind === "service.health_changed" && e.attributes?.to === "serving"));

      await sdk.collect?.(ctx as never);
      expect(ctx.emit.metrics.filter((m) => m.name === "service.check.passing").at(-1)).toMatchObject({
        value: 1,
        labels: { check: "database" },
      });
      const config = ctx.emit.events.find((e) => e.kind === "service.config");
      expect(JSON.stringify(config?.evidence)).not.toContain("s3cret");
      expect(JSON.stringify(config?.evidence)).not.toContain("pk_test_example");

      // The database goes down: the health change is an event at once, the check's at the next collect.
      await fetch(`http://${app.http}/toggle-db`);
      await until("not serving", () =>
        ctx.emit.events.some((e) => e.kind === "service.health_changed" && e.attributes?.to === "not_serving"),
      );
      await sdk.collect?.(ctx as never);
      expect(ctx.emit.events.find((e) => e.kind === "service.check_changed")).toMatchObject({
        attributes: { check: "database", from: "pass", to: "fail" },
      });

      // The app stops: unreachable, and not mistaken for a port without the SDK.
      child?.kill("SIGKILL");
      await new Promise((r) => child?.once("exit", r));
      await sdk.collect?.(ctx as never);
      expect(ctx.emit.events.at(-1)).toMatchObject({ kind: "service.health_changed", attributes: { to: "unreachable" } });
    } finally {
      await sdk.stop?.(ctx as never);
    }
  }, 40_000);

  it("looks through the listening ports again only every probeEveryMs", async () => {
    let now = 1_000_000;
    const ctx = createTestContext(sdk, { now: () => now, options: { ports: [], probe: true, probeEveryMs: 30_000 } });
    try {
      await sdk.collect?.(ctx as never); // before the app: nothing
      await startApp();
      now += 10_000;
      await sdk.collect?.(ctx as never);
      expect(ctx.emit.events.filter((e) => e.kind === "service.observed")).toEqual([]);
      now += 20_000;
      await sdk.collect?.(ctx as never);
      expect(ctx.emit.events.filter((e) => e.kind === "service.observed")).toHaveLength(1);
    } finally {
      await sdk.stop?.(ctx as never);
    }
  }, 40_000);

  it("finds an app within 30 s of its start as the clock measures it, though each collect starts a few ms late", async () => {
    // The grid's collects, each started late by its own few ms: 5, 3, 2, then 1 ms.
    const start = 1_000_000;
    let now = start + 5;
    const ctx = createTestContext(sdk, { now: () => now, options: { ports: [], probe: true, probeEveryMs: 30_000 } });
    try {
      await sdk.collect?.(ctx as never); // the probe, before the app
      await startApp();
      const startedAt = now;
      for (const at of [10_003, 20_002, 30_001]) {
        now = start + at;
        await sdk.collect?.(ctx as never);
      }
      const found = ctx.emit.events.filter((e) => e.kind === "service.observed");
      expect(found).toHaveLength(1);
      expect(now - startedAt).toBeLessThanOrEqual(30_000);
    } finally {
      await sdk.stop?.(ctx as never);
    }
  }, 40_000);

  it("finds an app on a configured port at the first collect after it starts, though the agent asked before it ran", async () => {
    const port = await freePort();
    let now = 1_000_000;
    const ctx = createTestContext(sdk, { now: () => now, options: { ports: [port], probe: false } });
    let app: Awaited<ReturnType<typeof startCoralSdk>> | undefined;
    try {
      await sdk.collect?.(ctx as never); // at boot, before the app: nothing there
      expect(ctx.emit.events).toEqual([]);
      app = await startCoralSdk({ service: "late-app", version: "1.0.0", port, handleSignals: false });
      now += 10_000;
      await sdk.collect?.(ctx as never);
      expect(ctx.emit.events.filter((e) => e.kind === "service.observed")).toEqual([
        expect.objectContaining({
          subject: expect.objectContaining({ name: "late-app" }),
          attributes: expect.objectContaining({ port: String(port) }),
        }),
      ]);
    } finally {
      await sdk.stop?.(ctx as never);
      await app?.close();
    }
  }, 30_000);

  it("reports a new version the SDK gives as a deploy, whether the app restarted between collects or while it was away", async () => {
    const port = await freePort();
    const ctx = createTestContext(sdk, { options: { ports: [port], probe: false } });
    const deploys = () => ctx.emit.events.filter((e) => e.kind === "service.deployed");
    let app = await startCoralSdk({ service: "shop", version: "1.0.0", build: "a1", port, handleSignals: false });
    try {
      await sdk.collect?.(ctx as never);
      await sdk.collect?.(ctx as never);
      expect(deploys()).toEqual([]);
      // A restart between two collects: the channel reconnects by itself, and Info says 1.1.0.
      await app.close();
      app = await startCoralSdk({ service: "shop", version: "1.1.0", build: "b2", port, handleSignals: false });
      await sdk.collect?.(ctx as never);
      expect(deploys()).toEqual([
        expect.objectContaining({
          subject: expect.objectContaining({ name: "shop" }),
          attributes: { source: "sdk", from: "1.0.0", to: "1.1.0", version: "1.1.0" },
          evidence: expect.objectContaining({ fromBuild: "a1", toBuild: "b2" }),
        }),
      ]);
      expect(ctx.emit.events.filter((e) => e.kind === "service.observed").map((e) => e.attributes?.version)).toEqual(["1.0.0", "1.1.0"]);
      // Down at a collect (unreachable), back with 1.2.0: a deploy too; the same version again is none.
      await app.close();
      await sdk.collect?.(ctx as never);
      app = await startCoralSdk({ service: "shop", version: "1.2.0", build: "c3", port, handleSignals: false });
      await sdk.collect?.(ctx as never);
      await sdk.collect?.(ctx as never);
      expect(deploys().map((e) => e.attributes?.to)).toEqual(["1.1.0", "1.2.0"]);
    } finally {
      await sdk.stop?.(ctx as never);
      await app.close();
    }
  }, 30_000);

  it("treats a port without the SDK (HTTP, nothing listening) as no SDK, not as down", async () => {
    const app = await startApp();
    const httpPort = Number(app.http.split(":").pop());
    const ctx = createTestContext(sdk, { options: { ports: [httpPort, 9], probe: false } });
    try {
      await sdk.collect?.(ctx as never);
      expect(ctx.emit.events).toEqual([]);
      expect(ctx.emit.metrics).toEqual([]);
    } finally {
      await sdk.stop?.(ctx as never);
    }
  }, 30_000);
});

lifecycleSuite(sdk, { options: { ports: [9], probe: false } });
