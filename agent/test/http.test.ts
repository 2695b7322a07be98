import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DiscoveryClient } from "@coral-mesh/sdk-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeHttpTransport } from "../src/http.js";

describe("the agent's requests to discovery, through node:http", () => {
  let server: Server;
  let base: string;
  const seen: Array<{ method: string; url: string; type: string | undefined; length: string | undefined; body: string }> = [];

  beforeAll(async () => {
    server = createServer((request, response) => {
      let body = "";
      request.on("data", (chunk) => {
        body += chunk;
      });
      request.on("end", () => {
        seen.push({
          method: request.method ?? "",
          url: request.url ?? "",
          type: request.headers["content-type"],
          length: request.headers["content-length"],
          body,
        });
        if (request.url === "/slow") return; // never answers
        if (request.url === "/huge") {
          response.end("x".repeat(2 * 1024 * 1024));
          return;
        }
        if (request.url === "/v1/health") {
          response.writeHead(429, { "content-type": "application/json", "retry-after": "7" });
          response.end(JSON.stringify({ code: "rate_limited", message: "Too many requests; wait." }));
          return;
        }
        response.writeHead(201, { "x-answer": "yes" });
        response.end("héllo");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it("sends the method, headers and body, and answers with status, headers and the whole body", async () => {
    const answer = await nodeHttpTransport({
      method: "PUT",
      url: `${base}/a/b?c=d`,
      headers: { "content-type": "application/json" },
      body: '{"é":1}',
      timeoutMs: 5_000,
    });
    expect(answer.status).toBe(201);
    expect(answer.header("X-Answer")).toBe("yes");
    expect(answer.header("x-missing")).toBeNull();
    expect(answer.body).toBe("héllo");
    expect(seen.at(-1)).toEqual({ method: "PUT", url: "/a/b?c=d", type: "application/json", length: "8", body: '{"é":1}' });
  });

  it("gives up after the timeout, as a TimeoutError", async () => {
    const started = Date.now();
    await expect(nodeHttpTransport({ method: "GET", url: `${base}/slow`, headers: {}, timeoutMs: 200 })).rejects.toMatchObject({
      name: "TimeoutError",
    });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("refuses an answer larger than discovery ever sends", async () => {
    await expect(nodeHttpTransport({ method: "GET", url: `${base}/huge`, headers: {}, timeoutMs: 5_000 })).rejects.toThrow(
      /larger than 1048576 bytes/,
    );
  });

  it("through the discovery client: errors keep their code, retry-after, and a refused connection says why", async () => {
    const client = new DiscoveryClient({ url: base, transport: nodeHttpTransport, timeoutMs: 2_000 });
    await expect(client.health()).rejects.toMatchObject({ code: "rate_limited", httpStatus: 429, retryAfterSeconds: 7 });
    const down = new DiscoveryClient({ url: "http://127.0.0.1:9", transport: nodeHttpTransport, timeoutMs: 2_000 });
    await expect(down.health()).rejects.toMatchObject({
      code: "discovery_unreachable",
      message: expect.stringMatching(
        /^Cannot reach discovery at http:\/\/127\.0\.0\.1:9: .*ECONNREFUSED.*Check the URL and the network\.$/,
      ),
    });
  });
});
