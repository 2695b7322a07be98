/**
 * The webhook notifier against real HTTP receivers on 127.0.0.1: retries with backoff (the waits
 * recorded by injected timers, so no test sleeps through them), Retry-After, the Slack shape,
 * the severity filter, a bounded queue, and a receiver that never answers.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Finding, Severity } from "@coral-mesh/sdk-proto";
import { notificationsConfigSchema } from "@coral-mesh/sdk-proto";
import { afterEach, describe, expect, it } from "vitest";
import { Notifier, retryAfterMs, slackMessage } from "../src/analysis/notify.js";
import type { PeriodicTimers } from "../src/periodic.js";
import { CONFIG_FILE, resolveSettings } from "../src/settings.js";
import { Bus } from "../src/store/bus.js";

const SECRET_PATH = "/services/T000/B000/s3cr3t-token";

interface Receiver {
  url: string;
  host: string;
  bodies: unknown[];
  hits: number;
  close: () => Promise<void>;
}

const receivers: Receiver[] = [];
const notifiers: Notifier[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  await Promise.all(notifiers.splice(0).map((n) => n.stop()));
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

/** A receiver whose `answer` decides each request's response by its number (1, 2, ...); one that never ends it hangs. */
async function receiver(answer: (n: number, res: ServerResponse) => unknown = (_, res) => res.end("ok")): Promise<Receiver> {
  const open = new Set<ServerResponse>();
  const r: Receiver = { url: "", host: "", bodies: [], hits: 0, close: async () => {} };
  const server = createServer((req: IncomingMessage, res) => {
    let text = "";
    req.on("data", (chunk: Buffer) => (text += chunk));
    req.on("end", () => {
      r.hits++;
      r.bodies.push(JSON.parse(text));
      open.add(res);
      res.on("close", () => open.delete(res));
      answer(r.hits, res);
    });
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const { port } = server.address() as AddressInfo;
  r.url = `http://127.0.0.1:${port}${SECRET_PATH}`;
  r.host = `127.0.0.1:${port}`;
  r.close = () =>
    new Promise((done) => {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      server.close(() => done());
    });
  receivers.push(r);
  return r;
}

/** Timers that record each wait asked for and run it at once. */
function recordingTimers(): PeriodicTimers & { waits: number[] } {
  const waits: number[] = [];
  return {
    waits,
    setTimeout: (run, ms) => {
      waits.push(ms);
      return setTimeout(run, 0);
    },
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };
}

function finding(id: string, severity: Severity = "critical"): Finding {
  return {
    id,
    kind: "bad-deploy",
    severity,
    state: "open",
    service: "api",
    agent: "web-1",
    rootCause: { service: "api", agent: "web-1", kind: "bad-deploy" },
    summary: "api crash-loops since its deploy of <2.4.1> & more",
    confidence: 0.9,
    evidence: { events: [], metrics: [], edges: [], checks: [], notes: [] },
    recommendation: { action: "rollback", step: "roll api back to 2.4.0", target: { version: "2.4.0" } },
    openedAt: 1_800_000_000_000,
    updatedAt: 1_800_000_000_000,
    resolvedAt: null,
    since: 1_800_000_000_000,
  };
}

function notifier(webhooks: unknown[], extra: Partial<ConstructorParameters<typeof Notifier>[0]> = {}) {
  const bus = new Bus();
  const log: string[] = [];
  const n = new Notifier({
    config: notificationsConfigSchema.parse({ webhooks }),
    bus,
    log: (line) => log.push(line),
    ...extra,
  });
  n.start();
  notifiers.push(n);
  return { bus, log, n };
}

describe("the webhook notifier", () => {
  it("retries a failing receiver with exponential backoff and delivers `{ event, finding }` once it accepts", async () => {
    const r = await receiver((n, res) => {
      res.statusCode = n <= 2 ? 503 : 200;
      res.end();
    });
    const timers = recordingTimers();
    const { bus, n, log } = notifier([{ url: r.url, format: "json" }], { timers });
    bus.emit("finding.changed", { change: "opened", finding: finding("f1") });
    await n.idle();
    expect(r.hits).toBe(3);
    expect(timers.waits).toEqual([1_000, 2_000]);
    expect(r.bodies[2]).toEqual({ event: "finding.opened", finding: finding("f1") });
    expect(n.stats()).toEqual([{ host: r.host, delivered: 1, dropped: 0 }]);
    expect(log).toEqual([]);
  });

  it("gives up after five tries, logging the host and never the URL's secret path", async () => {
    const r = await receiver((_, res) => {
      res.statusCode = 500;
      res.end();
    });
    const timers = recordingTimers();
    const { bus, n, log } = notifier([{ url: r.url }], { timers });
    bus.emit("finding.changed", { change: "opened", finding: finding("f1") });
    await n.idle();
    expect(r.hits).toBe(5);
    expect(timers.waits).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(log).toEqual([`notifications to ${r.host}: gave up on finding.opened f1 after 5 tries (HTTP 500)`]);
    expect(log.join("\n")).not.toContain("s3cr3t");
  });

  it("honours Retry-After, and does not retry a request the receiver refuses outright", async () => {
    const r = await receiver((n, res) => {
      if (n === 1) {
        res.statusCode = 429;
        res.setHeader("retry-after", "7");
      }
      res.end();
    });
    const timers = recordingTimers();
    const { bus, n } = notifier([{ url: r.url }], { timers });
    bus.emit("finding.changed", { change: "opened", finding: finding("f1") });
    await n.idle();
    expect(timers.waits).toEqual([7_000]);
    expect(r.hits).toBe(2);

    const refusing = await receiver((_, res) => {
      res.statusCode = 404;
      res.end();
    });
    const second = notifier([{ url: refusing.url }], { timers: recordingTimers() });
    second.bus.emit("finding.changed", { change: "opened", finding: finding("f2") });
    await second.n.idle();
    expect(refusing.hits).toBe(1);
    expect(second.log).toEqual([`notifications to ${refusing.host}: gave up on finding.opened f2 after 1 try (HTTP 404)`]);
  });

  it("reads Retry-After as seconds or as a date", () => {
    expect(retryAfterMs("3", 0)).toBe(3_000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(retryAfterMs("soon", 0)).toBeUndefined();
    expect(retryAfterMs(null, 0)).toBeUndefined();
  });

  it("sends Slack an incoming-webhook message: text and blocks, severity, summary, recommendation, no links", async () => {
    const r = await receiver();
    const { bus, n } = notifier([{ url: r.url, format: "slack" }]);
    bus.emit("finding.changed", { change: "opened", finding: finding("f1") });
    bus.emit("finding.changed", { change: "resolved", finding: { ...finding("f1"), state: "resolved", resolvedAt: 1_800_000_600_000 } });
    await n.idle();
    const [opened, resolved] = r.bodies as Array<{ text: string; blocks: Array<{ type: string; text?: { type: string; text: string } }> }>;
    expect(opened?.text).toBe("[CRITICAL] bad-deploy opened on api@web-1: api crash-loops since its deploy of <2.4.1> & more");
    expect(opened?.blocks.map((b) => b.type)).toEqual(["section", "section", "context"]);
    expect(opened?.blocks[0]?.text).toEqual({
      type: "mrkdwn",
      text: "*CRITICAL* `bad-deploy` opened on *api@web-1*\napi crash-loops since its deploy of &lt;2.4.1&gt; &amp; more",
    });
    expect(opened?.blocks[1]?.text?.text).toBe("*Recommendation* (rollback): roll api back to 2.4.0");
    expect(resolved?.text).toMatch(/^\[CRITICAL\] bad-deploy resolved on api@web-1/);
    expect(resolved?.blocks.map((b) => b.type)).toEqual(["section", "context"]);
    expect(JSON.stringify(r.bodies)).not.toMatch(/https?:\/\/|<http/);
  });

  it("names a cascade's root cause in Slack", () => {
    const f = { ...finding("f3"), service: "web", rootCause: { service: "postgres", agent: "db-1", kind: "dependency-down" as const } };
    expect(JSON.stringify(slackMessage("finding.opened", f).blocks)).toContain("Root cause: dependency-down on postgres");
  });

  it("sends only findings at least as severe as a webhook's minSeverity, and only openings and resolutions", async () => {
    const critical = await receiver();
    const everything = await receiver();
    const { bus, n } = notifier([
      { url: critical.url, minSeverity: "critical" },
      { url: everything.url, minSeverity: "info" },
    ]);
    bus.emit("finding.changed", { change: "opened", finding: finding("w", "warning") });
    bus.emit("finding.changed", { change: "updated", finding: finding("c", "critical") });
    bus.emit("finding.changed", { change: "opened", finding: finding("i", "info") });
    bus.emit("finding.changed", { change: "resolved", finding: finding("c", "critical") });
    await n.idle();
    const ids = (r: Receiver) => (r.bodies as Array<{ event: string; finding: Finding }>).map((b) => `${b.event}:${b.finding.id}`);
    expect(ids(critical)).toEqual(["finding.resolved:c"]);
    expect(ids(everything)).toEqual(["finding.opened:w", "finding.opened:i", "finding.resolved:c"]);
  });

  it("does not let a receiver that never answers block the bus or the other webhooks, and times it out", async () => {
    const hanging = await receiver(() => {});
    const fine = await receiver();
    const { bus, n, log } = notifier([{ url: hanging.url }, { url: fine.url }], { timeoutMs: 300, maxAttempts: 1 });
    for (let i = 0; i < 50; i++) bus.emit("finding.changed", { change: "opened", finding: finding(`f${i}`) });
    // emit only queues: it has returned fifty times before any receiver has seen a request.
    expect(hanging.hits + fine.hits).toBe(0);
    await expect.poll(() => fine.hits, { timeout: 10_000 }).toBe(50);
    // Its queue goes one request at a time, each given up after the timeout: far behind the other.
    expect(hanging.hits).toBeLessThan(50);
    await expect
      .poll(() => log[0], { timeout: 10_000 })
      .toBe(`notifications to ${hanging.host}: gave up on finding.opened f0 after 1 try (no answer within 0.3 s)`);
    await n.stop();
  }, 30_000); // as long as its two polls may take on a busy machine, not vitest's default 5 s

  it("keeps at most queueLimit waiting per webhook, dropping the oldest with a log line", async () => {
    let release: (() => void) | undefined;
    const r = await receiver((n, res) => {
      if (n === 1) release = () => res.end();
      else res.end();
    });
    const { bus, n, log } = notifier([{ url: r.url }], { queueLimit: 3 });
    for (let i = 0; i < 6; i++) bus.emit("finding.changed", { change: "opened", finding: finding(`f${i}`) });
    // f0 is under way; f1 and f2 make way for f3, f4, f5.
    expect(log).toHaveLength(2);
    expect(log[0]).toBe(`notifications to ${r.host}: queue full (3), dropped the oldest (finding.opened f1); 1 dropped so far`);
    await expect.poll(() => release !== undefined, { timeout: 10_000 }).toBe(true);
    release?.();
    await n.idle();
    expect((r.bodies as Array<{ finding: Finding }>).map((b) => b.finding.id)).toEqual(["f0", "f3", "f4", "f5"]);
    expect(n.stats()).toEqual([{ host: r.host, delivered: 4, dropped: 2 }]);
  });

  it("stops at once, even while waiting to retry", async () => {
    const r = await receiver((_, res) => {
      res.statusCode = 503;
      res.end();
    });
    const { bus, n } = notifier([{ url: r.url }], { backoffMs: 3_600_000 });
    bus.emit("finding.changed", { change: "opened", finding: finding("f1") });
    await expect.poll(() => r.hits, { timeout: 10_000 }).toBe(1);
    const started = performance.now();
    await n.stop();
    expect(performance.now() - started).toBeLessThan(5_000);
    bus.emit("finding.changed", { change: "opened", finding: finding("f2") });
    expect(r.hits).toBe(1);
  });
});

describe("notifications in coordinator.json", () => {
  const withConfig = (config: unknown) => {
    const dataDir = mkdtempSync(join(tmpdir(), "coral-notify-config-"));
    dirs.push(dataDir);
    writeFileSync(
      join(dataDir, CONFIG_FILE),
      JSON.stringify({ discovery: "https://discovery.example.workers.dev", ...(config as object) }),
    );
    return () => resolveSettings({ dataDir });
  };

  it("are read with their defaults, and none without the section", () => {
    expect(withConfig({})().notifications).toEqual({ webhooks: [] });
    const settings = withConfig({ notifications: { webhooks: [{ url: "https://hooks.slack.com/services/x", format: "slack" }] } })();
    expect(settings.notifications.webhooks).toEqual([
      { url: "https://hooks.slack.com/services/x", format: "slack", minSeverity: "warning" },
    ]);
  });

  it("refuse a webhook that is not an http(s) URL, or an unknown format", () => {
    expect(withConfig({ notifications: { webhooks: [{ url: "ftp://example.com/hook" }] } })).toThrow(
      /notifications\.webhooks\.0\.url: a webhook URL is http or https/,
    );
    expect(withConfig({ notifications: { webhooks: [{ url: "https://example.com", format: "teams" }] } })).toThrow(
      expect.objectContaining({ code: "config_invalid" }),
    );
  });
});
