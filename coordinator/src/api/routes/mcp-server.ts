/**
 * The MCP server behind POST /v1/mcp (routes/mcp.ts), in a module of its own: the MCP SDK it
 * loads takes a fifth of a second to import, which the route spends at its first request, not
 * the coordinator at its start.
 */
import { CoralError } from "@coral-mesh/sdk-proto";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { CallToolRequestSchema, type CallToolResult, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import packageJson from "../../../package.json" with { type: "json" };
import { redactText, redactValue } from "../../ask/redact.js";
import type { AskTool } from "../../ask/tool.js";
import { callTool, toolInputSchema } from "../../ask/tools.js";

const INSTRUCTIONS =
  "Coral watches an application spread over many hosts. Start from list_findings (what is wrong, ranked, with root causes) or get_summary, then look closer with get_finding, get_service, get_topology, list_events and get_metrics. Every tool is read-only; results are bounded, and say so with truncated and a cursor or hint.";

/** An MCP server over `tools`: one per request, as the endpoint keeps no session. */
export function mcpServer(tools: readonly AskTool[]): Server {
  const server = new Server({ name: "coral", version: packageJson.version }, { capabilities: { tools: {} }, instructions: INSTRUCTIONS });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: tools.map((t) => ({
      name: t.name,
      description: t.description,
      inputSchema: toolInputSchema(t) as { type: "object" },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    try {
      const raw = await callTool(tools, request.params.name, request.params.arguments ?? {}, extra.signal);
      // Each tool redacts what it reads; this is the last pass before anything leaves, as the
      // conversation makes before a model sees a result (hints and citations echo the input).
      const result = redactValue(raw);
      return {
        content: [{ type: "text", text: JSON.stringify(result.content) }],
        structuredContent: { result: result.content, citations: result.citations, truncated: result.truncated ?? false },
      };
    } catch (error) {
      const coral =
        error instanceof CoralError ? error : new CoralError("internal_error", "The tool failed unexpectedly; see the coordinator's log.");
      if (coral.code === "internal_error") console.error(error);
      // A tool error, not a protocol one: the model reads it and can call again.
      const message = redactText(coral.message);
      return {
        isError: true,
        content: [{ type: "text", text: `[${coral.code}] ${message}` }],
        structuredContent: { code: coral.code, message },
      };
    }
  });
  return server;
}

/** Answers one JSON-RPC request with a fresh server, as the endpoint keeps no session. */
export async function handleMcp(tools: readonly AskTool[], request: Request): Promise<Response> {
  const server = mcpServer(tools);
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  await server.connect(transport);
  try {
    // With JSON responses the answer is whole when it resolves: nothing is left to send after.
    return await transport.handleRequest(request);
  } finally {
    await server.close();
  }
}
