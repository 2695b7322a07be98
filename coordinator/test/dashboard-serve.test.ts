/**
 * The dashboard's side of the API, in process: its files and their headers, the token's way
 * into a browser (once in the address, then a read-only cookie), and the live stream fed by
 * the bus. The browser itself is in dashboard/test.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createApiApp } from "../src/api/app.js";
import { cookieValue, DASHBOARD_COOKIE } from "../src/api/dashboard.js";
import { serveApi } from "../src/api/serve.js";
import { loadOrCreateIdentity } from "../src/identity.js";
import { Bus } from "../src/store/bus.js";
import { openStore } from "../src/store/db.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const TOKEN = "0123456789abcdef0123456789abcdef";

async function setup(options: { token?: string; built?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "coral-dashboard-api-"));
  dirs.push(dir);
  const dashboardDir = join(dir, "dashboard");
  if (options.built !== false) {
    mkdirSync(join(dashboardDir, "assets"), { recursive: true });
    writeFileSync(join(dashboardDir, "index.html"), '<!doctype html><script type="module" src="/assets/index-abc123.js"></script>');
    writeFileSync(join(dashboardDir, "assets", "index-abc123.js"), "console.log(1)");
  }
  const { identity } = await loadOrCreateIdentity(join(dir, "data"));
  const bus = new Bus();
  const app = createApiApp({
    db: openStore(join(dir, "data", "coral.db")),
    identity,
    discoveryUrl: "https://discovery.example.workers.dev",
    mesh: { address: "100.64.0.1", listenPort: 51820 },
    heartbeatIntervalMs: 10_000,
    discoveryState: () => ({ state: "registered", lastRegistered: 0, lastError: null, observedAddress: null }),
    peers: async () => new Map(),
    removePeer: async () => {},
    bus,
    dashboardDir,
    ...(options.token ? { token: options.token } : {}),
  });
  return { app, bus, dir };
}

describe("the dashboard's files", () => {
  it("serves the page uncached and hashed assets for a year, with their types", async () => {
    const { app } = await setup();
    const page = await app.request("/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("cache-control")).toBe("no-cache");
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    const asset = await app.request("/assets/index-abc123.js");
    expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(await asset.text()).toBe("console.log(1)");
  });

  it("answers not_found for a missing asset or a path out of its folder, and dashboard_not_built without a build", async () => {
    const { app } = await setup();
    for (const path of ["/assets/missing.js", "/assets/..%2F..%2Fdata%2Fidentity"]) {
      const response = await app.request(path);
      expect(response.status, path).toBe(404);
      expect(((await response.json()) as { code: string }).code).toBe("not_found");
    }
    const bare = await setup({ built: false });
    const response = await bare.app.request("/");
    expect(response.status).toBe(503);
    expect(((await response.json()) as { code: string }).code).toBe("dashboard_not_built");
  });
});

describe("the token in a browser", () => {
  it("refuses the page without it, and a wrong one in the address", async () => {
    const { app } = await setup({ token: TOKEN });
    expect((await app.request("/")).status).toBe(401);
    const wrong = await app.request(`/?token=${"x".repeat(32)}`);
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { code: string }).code).toBe("api_unauthorized");
  });

  it("takes it once in the address and answers an HttpOnly, SameSite=Strict cookie that is not the token", async () => {
    const { app } = await setup({ token: TOKEN });
    const exchanged = await app.request(`/?token=${TOKEN}`);
    expect(exchanged.status).toBe(303);
    expect(exchanged.headers.get("location")).toBe("/");
    const cookie = exchanged.headers.get("set-cookie") ?? "";
    expect(cookie).toBe(`${DASHBOARD_COOKIE}=${cookieValue(TOKEN)}; Path=/; HttpOnly; SameSite=Strict`);
    expect(cookie).not.toContain(TOKEN);
    const jar = { cookie: `${DASHBOARD_COOKIE}=${cookieValue(TOKEN)}` };
    expect((await app.request("/", { headers: jar })).status).toBe(200);
    expect((await app.request("/v1/status", { headers: jar })).status).toBe(200);
  });

  it("lets the cookie read and ask but not write, and a forged cookie do nothing", async () => {
    const { app } = await setup({ token: TOKEN });
    const jar = { cookie: `${DASHBOARD_COOKIE}=${cookieValue(TOKEN)}` };
    const write = await app.request("/v1/tokens", { method: "POST", headers: jar, body: "{}" });
    expect(write.status).toBe(401);
    // A question is a read: the page may post one from its own origin, not from another.
    const question = { method: "POST", body: JSON.stringify({ question: "what is wrong?" }) };
    const own = await app.request("http://coral.test/v1/ask", {
      ...question,
      headers: { ...jar, host: "coral.test", origin: "http://coral.test" },
    });
    expect(own.status).not.toBe(401); // past the guard (this app has no ask service, so 404)
    const foreign = await app.request("http://coral.test/v1/ask", {
      ...question,
      headers: { ...jar, host: "coral.test", origin: "http://evil.test" },
    });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { code: string }).code).toBe("host_not_allowed");
    expect((await app.request("/v1/mcp", { method: "POST", headers: jar, body: "{}" })).status).toBe(401);
    expect((await app.request("/v1/status", { headers: { cookie: `${DASHBOARD_COOKIE}=${TOKEN}` } })).status).toBe(401);
    expect((await app.request("/v1/status", { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });
});

describe("pages of other origins", () => {
  it("may not post to the token-less API through the operator's browser, while the CLI and the dashboard's own pages may", async () => {
    const { app } = await setup();
    const post = (path: string, headers: Record<string, string>) =>
      app.request(`http://127.0.0.1:51822${path}`, { method: "POST", headers: { host: "127.0.0.1:51822", ...headers }, body: "{}" });
    for (const origin of ["http://evil.test", "http://127.0.0.1:8080", "null"]) {
      const refused = await post("/v1/tokens", { origin, "content-type": "text/plain" });
      expect(refused.status, origin).toBe(403);
      expect(((await refused.json()) as { code: string }).code).toBe("host_not_allowed");
    }
    // The dashboard's own page, and a client that is not a browser (no Origin), get past the guard.
    expect((await post("/v1/tokens", { origin: "http://127.0.0.1:51822", "content-type": "application/json" })).status).not.toBe(403);
    expect((await post("/v1/tokens", { "content-type": "application/json" })).status).not.toBe(403);
    // Reads are not refused for their origin (a page cannot read the answer anyway).
    expect(
      (await app.request("http://127.0.0.1:51822/v1/status", { headers: { host: "127.0.0.1:51822", origin: "http://evil.test" } })).status,
    ).toBe(200);
  });
});

/** A GET over a real socket to `url`, with the Host header a browser would send for `host`. */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the Host a request names (DNS rebinding)", () => {
  it("without a token, answers loopback's names and refuses any other, over a real socket", async () => {
    const { app, dir } = await setup();
    const served = await serveApi({ fetch: app.fetch, host: "127.0.0.1", port: 0, token: undefined, dataDir: dir, meshId: "m" });
    try {
      const port = new URL(served.url).port;
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `coral.localhost:${port}`, `[::1]:${port}`, `127.1.2.3:${port}`])
        expect((await getWithHost(`${served.url}/v1/status`, host)).status, host).toBe(200);
      for (const host of [`rebind.example:${port}`, `192.0.2.10:${port}`, `localhost.example:${port}`, `127.0.0.1.example:${port}`]) {
        const refused = await getWithHost(`${served.url}/`, host);
        expect(refused.status, host).toBe(403);
        const body = JSON.parse(refused.body) as { code: string; message: string };
        expect(body.code).toBe("host_not_allowed");
        expect(body.message).toContain("--api-token");
      }
    } finally {
      await served.close();
    }
  });

  it("with a token, lets any name through that carries it", async () => {
    const { app } = await setup({ token: TOKEN });
    const answer = await app.request("http://coral.example:7070/v1/status", { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(answer.status).toBe(200);
  });
});

describe("GET /v1/stream", () => {
  it("opens with hello, then sends each bus message as a compact event", async () => {
    const { app, bus } = await setup();
    const response = await app.request("/v1/stream");
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    const until = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended:\n${text}`);
        text += decoder.decode(value);
      }
    };
    await until(/event: hello/);
    bus.emit("service.changed", { agent: "web-1", key: "sdk:api", name: "api", change: "health" });
    bus.emit("health.changed", { agent: "web-1", from: "healthy", to: "offline", at: 1 });
    await until(/event: health\n/);
    expect(text).toContain(`event: service\ndata: {"type":"service","agent":"web-1","name":"api","change":"health"}`);
    expect(text).toContain(`event: health\ndata: {"type":"health","agent":"web-1","from":"healthy","to":"offline"}`);
    await reader.cancel();
  });
});
