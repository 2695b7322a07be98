/**
 * POST /v1/mcp: the tools of `coral ask` over the Model Context Protocol (streamable HTTP,
 * stateless), for Claude Desktop, Claude Code or any MCP client; `coral mcp` relays stdio
 * to it. Read-only: the tools read the store and never write it. The API's own guard
 * applies (its token when it has one, a loopback Host otherwise, and no page of another origin).
 */
import type { Hono } from "hono";
import type { AskTool } from "../../ask/tool.js";

export function mcpRoute(app: Hono, tools: readonly AskTool[]): void {
  app.post("/v1/mcp", async (c) => {
    const { handleMcp } = await import("./mcp-server.js");
    return handleMcp(tools, c.req.raw);
  });
  // Stateless: no stream to open (GET) and no session to end (DELETE).
  app.on(["GET", "DELETE"], "/v1/mcp", (c) =>
    c.json({ jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed: POST JSON-RPC messages to /v1/mcp." }, id: null }, 405, {
      allow: "POST",
    }),
  );
}
