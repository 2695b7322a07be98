/** Anthropic's Messages API, streamed (SSE), with tool use, through @anthropic-ai/sdk. */
import Anthropic, { APIError } from "@anthropic-ai/sdk";
import type { MessageParam, RawMessageStreamEvent, Tool } from "@anthropic-ai/sdk/resources/messages";
import { CoralError } from "@coral-mesh/sdk-proto";
import {
  DEFAULT_STALL_MS,
  type ModelMessage,
  type ModelProvider,
  type ProviderOptions,
  providerHttpError,
  seconds,
  stallGuard,
  type ToolCall,
  type TurnRequest,
  type TurnResult,
} from "./provider.js";

export function anthropicProvider(options: ProviderOptions): ModelProvider {
  const client = new Anthropic({
    apiKey: options.apiKey ?? null,
    ...(options.baseUrl ? { baseURL: options.baseUrl } : {}),
    // Retries are the conversation's to decide (once, and only when the wait is short).
    maxRetries: 0,
  });
  const stallMs = options.stallMs ?? DEFAULT_STALL_MS;
  return {
    provider: "anthropic",
    model: options.model,
    async streamTurn(request, { onText, signal }): Promise<TurnResult> {
      const guard = stallGuard(signal, stallMs);
      const blocks = new Map<number, { kind: "text" } | { kind: "tool"; id: string; name: string; json: string }>();
      const result: TurnResult = { text: "", toolCalls: [], usage: { inputTokens: 0, outputTokens: 0 }, stopReason: "end" };
      let stopped = false;
      let started = false;
      try {
        const stream = await client.messages.create(
          {
            model: options.model,
            max_tokens: request.maxOutputTokens,
            system: request.system,
            messages: toMessages(request.messages),
            ...(request.tools.length ? { tools: request.tools.map(toTool) } : {}),
            stream: true,
          },
          { signal: guard.signal },
        );
        for await (const event of stream as AsyncIterable<RawMessageStreamEvent>) {
          guard.touch();
          started = true;
          switch (event.type) {
            case "message_start":
              result.usage.inputTokens = event.message.usage.input_tokens;
              result.usage.outputTokens = event.message.usage.output_tokens;
              break;
            case "content_block_start":
              if (event.content_block.type === "tool_use") {
                blocks.set(event.index, { kind: "tool", id: event.content_block.id, name: event.content_block.name, json: "" });
              } else if (event.content_block.type === "text") {
                blocks.set(event.index, { kind: "text" });
                if (event.content_block.text) {
                  result.text += event.content_block.text;
                  onText(event.content_block.text);
                }
              }
              break;
            case "content_block_delta": {
              const block = blocks.get(event.index);
              if (event.delta.type === "text_delta") {
                result.text += event.delta.text;
                onText(event.delta.text);
              } else if (event.delta.type === "input_json_delta" && block?.kind === "tool") {
                block.json += event.delta.partial_json;
              }
              break;
            }
            case "content_block_stop": {
              const block = blocks.get(event.index);
              if (block?.kind === "tool") result.toolCalls.push(toolCall(block));
              break;
            }
            case "message_delta":
              result.usage.outputTokens = event.usage.output_tokens;
              if (event.usage.input_tokens != null) result.usage.inputTokens = event.usage.input_tokens;
              result.stopReason =
                event.delta.stop_reason === "tool_use" ? "tool_use" : event.delta.stop_reason === "max_tokens" ? "max_tokens" : "end";
              break;
            case "message_stop":
              stopped = true;
              break;
          }
        }
      } catch (error) {
        throw mapError(error, guard.stalled, started, stallMs);
      } finally {
        guard.done();
      }
      // The SDK ends the iteration quietly on an abort.
      if (signal?.aborted) throw new CoralError("model_failed", "The question was cancelled.");
      if (guard.stalled) throw stalledError(stallMs);
      if (!stopped) throw new CoralError("model_stream_cut", "Anthropic's answer stopped before its end (the stream was cut).");
      return result;
    },
  };
}

function toolCall(block: { id: string; name: string; json: string }): ToolCall {
  if (block.json.trim() === "") return { id: block.id, name: block.name, input: {} };
  try {
    return { id: block.id, name: block.name, input: JSON.parse(block.json) };
  } catch {
    return { id: block.id, name: block.name, input: undefined, malformed: block.json };
  }
}

function toTool(tool: TurnRequest["tools"][number]): Tool {
  return { name: tool.name, description: tool.description, input_schema: tool.inputSchema as Tool["input_schema"] };
}

function toMessages(messages: readonly ModelMessage[]): MessageParam[] {
  return messages.map((message): MessageParam => {
    if (message.role === "user") return { role: "user", content: message.content };
    if (message.role === "assistant") {
      return {
        role: "assistant",
        content: [
          ...(message.text ? [{ type: "text" as const, text: message.text }] : []),
          ...message.toolCalls.map((call) => ({
            type: "tool_use" as const,
            id: call.id,
            name: call.name,
            // Input that did not parse goes back as an empty object; the tool error says why.
            input: (call.malformed === undefined && call.input !== null && typeof call.input === "object" ? call.input : {}) as Record<
              string,
              unknown
            >,
          })),
        ],
      };
    }
    return {
      role: "user",
      content: message.results.map((r) => ({
        type: "tool_result" as const,
        tool_use_id: r.callId,
        content: r.content,
        is_error: r.isError,
      })),
    };
  });
}

function stalledError(stallMs: number): CoralError {
  return new CoralError("model_stream_cut", `Anthropic sent nothing for ${seconds(stallMs)}; the answer was given up.`);
}

function mapError(error: unknown, stalled: boolean, started: boolean, stallMs: number): CoralError {
  if (error instanceof CoralError) return error;
  if (stalled) return stalledError(stallMs);
  if (error instanceof APIError && error.status !== undefined) {
    return providerHttpError("anthropic", error.status, error.headers, error.apiMessage ?? "", error.type ?? undefined);
  }
  if (error instanceof APIError && error.type) {
    // An `error` event inside the stream: overloaded and the like, after the 200.
    return providerHttpError(
      "anthropic",
      error.type === "overloaded_error" ? 529 : undefined,
      undefined,
      error.apiMessage ?? "",
      error.type,
    );
  }
  const detail = error instanceof Error ? error.message : String(error);
  if (started) return new CoralError("model_stream_cut", `Anthropic's answer stopped before its end (${detail}).`);
  return new CoralError("model_failed", `Anthropic could not be reached (${detail}).`);
}
