/**
 * MCP as a client sees it: the SDK's own Client against the coordinator's API on a real
 * loopback socket (streamable HTTP), with and without the API token; and through `coral mcp`
 * (the built CLI, spawned), which relays stdio to that API.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServedApi, serveApi } from "../src/api/serve.js";
import { createAskTools } from "../src/ask/tools.js";
import { type AskMesh, NOW, openAskMesh, SECRETS } from "./fixtures/ask-seed.js";
import { modelApi } from "./fixtures/model-api.js";

const TOKEN = "0123456789abcdef0123456789abcdef";
const CORAL = fileURLToPath(new URL("../bin/coral.js", import.meta.url));
const TOOLS = [
  "get_finding",
  "get_metrics",
  "get_service",
  "get_summary",
  "get_topology",
  "list_agents",
  "list_events",
  "list_findings",
  "list_services",
];

let mesh: AskMesh;
let open: ServedApi;
let guarded: ServedApi;
let openDir: string;
let guardedDir: string;
const clients: Client[] = [];

async function serveWith(dir: string, token?: string): Promise<ServedApi> {
  const app = await modelApi(mesh.db, join(dir, "id"), () => NOW, {
    askTools: createAskTools({ db: mesh.db, now: () => NOW }),
    ...(token ? { token } : {}),
  });
  return serveApi({ fetch: app.fetch, host: "127.0.0.1", port: 0, token, dataDir: dir, meshId: "m" });
}

async function connect(url: string, headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: "coral-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/v1/mcp`), { requestInit: { headers } }));
  clients.push(client);
  return client;
}

const text = (result: unknown) => ((result as CallToolResult).content[0] as { type: "text"; text: string }).text;

beforeAll(async () => {
  mesh = openAskMesh();
  openDir = mkdtempSync(join(tmpdir(), "coral-mcp-"));
  guardedDir = mkdtempSync(join(tmpdir(), "coral-mcp-token-"));
  open = await serveWith(openDir);
  guarded = await serveWith(guardedDir, TOKEN);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  await open?.close();
  await guarded?.close();
  mesh?.db.$client.close();
  for (const dir of [openDir, guardedDir, mesh?.dir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("POST /v1/mcp", () => {
  it("lists every tool, read-only, each with its input schema", async () => {
    const client = await connect(open.url);
    expect(client.getServerVersion()?.name).toBe("coral");
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS);
    for (const t of tools) {
      expect(t.inputSchema.type, t.name).toBe("object");
      expect(t.annotations?.readOnlyHint, t.name).toBe(true);
    }
    expect(tools.find((t) => t.name === "get_finding")?.inputSchema.required).toEqual(["id"]);
  });

  it("answers a tool call with its result, and its citations beside", async () => {
    const client = await connect(open.url);
    const result = await client.callTool({ name: "list_findings", arguments: {} });
    expect(result.isError).toBeFalsy();
    const content = JSON.parse(text(result)) as { findings: Array<{ id: string }> };
    expect(content.findings.map((f) => f.id)).toEqual(["f-worker", "f-postgres"]);
    expect((result.structuredContent as { citations: unknown[] }).citations).toContainEqual({ kind: "finding", id: "f-postgres" });
    const finding = await client.callTool({ name: "get_finding", arguments: { id: "f-postgres" } });
    expect(JSON.parse(text(finding))).toMatchObject({ id: "f-postgres", rootCause: { service: "postgres" } });
    const service = await client.callTool({ name: "get_service", arguments: { name: "api" } });
    for (const secret of SECRETS) expect(JSON.stringify(service)).not.toContain(secret);
  });

  it("answers bad input and an unknown tool as tool errors (isError) with the code, not as protocol errors", async () => {
    const client = await connect(open.url);
    const bad = await client.callTool({ name: "get_service", arguments: { nmae: "api" } });
    expect(bad.isError).toBe(true);
    expect(text(bad)).toMatch(/^\[invalid_tool_input\] get_service: .*name/);
    const unknown = await client.callTool({ name: "drop_tables", arguments: {} });
    expect(unknown.isError).toBe(true);
    expect(text(unknown)).toContain("[invalid_tool_input] There is no tool named drop_tables");
    const missing = await client.callTool({ name: "get_finding", arguments: { id: "nope" } });
    expect(text(missing)).toContain("[finding_not_found]");
  });

  it("needs the token when the API has one: 401 api_unauthorized without it", async () => {
    const refused = await fetch(`${guarded.url}/v1/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { code: string }).code).toBe("api_unauthorized");
    await expect(connect(guarded.url)).rejects.toThrow(/401|unauthorized|token/i);
    const client = await connect(guarded.url, { authorization: `Bearer ${TOKEN}` });
    expect((await client.listTools()).tools).toHaveLength(TOOLS.length);
  });

  it("refuses a page of another origin, and GET (no stream to open)", async () => {
    const foreign = await fetch(`${open.url}/v1/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", origin: "https://evil.example" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(foreign.status).toBe(403);
    expect((await fetch(`${open.url}/v1/mcp`)).status).toBe(405);
  });
});

describe("coral mcp", () => {
  it("relays stdio to the running coordinator's /v1/mcp, with the token from its data directory", async () => {
    for (const dir of [openDir, guardedDir]) {
      const transport = new StdioClientTransport({ command: process.execPath, args: [CORAL, "mcp", "--data-dir", dir], stderr: "pipe" });
      const client = new Client({ name: "coral-test", version: "1.0.0" });
      await client.connect(transport);
      clients.push(client);
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort(), dir).toEqual(TOOLS);
      const result = await client.callTool({ name: "get_finding", arguments: { id: "f-postgres" } });
      expect(JSON.parse(text(result))).toMatchObject({ id: "f-postgres", evidence: { edges: [{ from: "api", to: "postgres" }] } });
      const bad = await client.callTool({ name: "list_events", arguments: { limit: 1000 } });
      expect(bad.isError).toBe(true);
      await client.close();
    }
  }, 60_000);

  it("answers each request with a JSON-RPC error once the coordinator stops, and goes on", async () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-mcp-stop-"));
    const served = await serveWith(dir);
    try {
      const client = new Client({ name: "coral-test", version: "1.0.0" });
      await client.connect(
        new StdioClientTransport({ command: process.execPath, args: [CORAL, "mcp", "--data-dir", dir], stderr: "pipe" }),
      );
      clients.push(client);
      expect((await client.listTools()).tools).toHaveLength(TOOLS.length);
      await served.close();
      await expect(client.callTool({ name: "list_findings", arguments: {} })).rejects.toThrow(/does not answer.*coral coordinator start/);
      await expect(client.listTools()).rejects.toThrow(/does not answer/);
      await client.close();
    } finally {
      await served.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("says in one line on stderr that no coordinator runs, and exits 1", () => {
    const empty = mkdtempSync(join(tmpdir(), "coral-mcp-none-"));
    try {
      const run = spawnSync(process.execPath, [CORAL, "mcp", "--data-dir", empty], { input: "", encoding: "utf8", timeout: 30_000 });
      expect(run.status).toBe(1);
      expect(run.stdout).toBe("");
      expect(run.stderr).toMatch(
        /^coral: \[coordinator_unreachable\] No coordinator is running with data directory .*coral coordinator start/,
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  }, 60_000);
});
