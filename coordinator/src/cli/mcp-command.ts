/**
 * `coral mcp`: an MCP server on stdio for Claude Desktop, Claude Code or any MCP client, which
 * relays each message to the running coordinator's `POST /v1/mcp`. Only the coordinator opens
 * the store; this process holds no state of its own. stdout is the protocol: everything else
 * goes to stderr.
 */
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { isJSONRPCRequest, isJSONRPCResultResponse, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { ApiClient, type ApiTarget } from "./api-client.js";
import type { ExitCode, Io } from "./output.js";

/** JSON-RPC's code for an error inside the server. */
const INTERNAL_ERROR = -32603;

export async function mcpServe(target: ApiTarget, io: Io): Promise<ExitCode> {
  const client = ApiClient.locate(target);
  // Before the client is told anything: a coordinator that is not running is one clear line, not a silent hang.
  await client.request("GET", "/v1/status");
  const log = (line: string) => io.err(`coral mcp: ${line}\n`);

  const upstream = new StreamableHTTPClientTransport(new URL(`${client.url}/v1/mcp`), { requestInit: { headers: client.authHeaders() } });
  const stdio = new StdioServerTransport();
  const initializing = new Set<string | number>();

  upstream.onmessage = (message) => {
    // The version agreed at initialize goes on every later request, as the protocol asks.
    if (isJSONRPCResultResponse(message) && initializing.delete(message.id)) {
      const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === "string") upstream.setProtocolVersion(version);
    }
    void stdio.send(message);
  };
  upstream.onerror = (error) => log(error.message);

  stdio.onmessage = (message: JSONRPCMessage) => {
    if (isJSONRPCRequest(message) && message.method === "initialize") initializing.add(message.id);
    upstream.send(message).catch((error: unknown) => {
      const why = error instanceof Error ? error.message : String(error);
      log(`the coordinator at ${client.url} did not take a message: ${why}`);
      if (isJSONRPCRequest(message)) {
        void stdio.send({
          jsonrpc: "2.0",
          id: message.id,
          error: {
            code: INTERNAL_ERROR,
            message: `The coordinator's API at ${client.url} does not answer (${why}); is \`coral coordinator start\` still running?`,
          },
        });
      }
    });
  };
  stdio.onerror = (error) => log(error.message);

  await upstream.start();
  await stdio.start();
  log(`relaying MCP on stdio to ${client.url}/v1/mcp`);
  await new Promise<void>((done) => {
    process.stdin.once("end", done);
    process.stdin.once("close", done);
  });
  await stdio.close();
  await upstream.close().catch(() => {});
  return 0;
}
