/**
 * Any OpenAI-compatible chat completions endpoint, streamed, with tool calls, through the
 * openai package: OpenAI itself, and local models behind Ollama, llama.cpp's server or vLLM
 * (their base URL, e.g. http://127.0.0.1:11434/v1).
 */
import { CoralError } from "@coral-mesh/sdk-proto";
import OpenAI, { APIError } from "openai";
import type { ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionTool } from "openai/resources/chat/completions";
import {
  LOCAL_STALL_MS,
  type ModelMessage,
  type ModelProvider,
  type ProviderOptions,
  providerHttpError,
  seconds,
  stallGuard,
  type ToolCall,
  type TurnResult,
} from "./provider.js";

export function openaiProvider(options: ProviderOptions): ModelProvider {
  const client = new OpenAI({
    // A local server takes any key; the package insists on one.
    apiKey: options.apiKey ?? "local",
    ...(options.baseUrl ? { baseURL: options.baseUrl } : {}),
    maxRetries: 0,
  });
  const stallMs = options.stallMs ?? LOCAL_STALL_MS;
  return {
    provider: "openai",
    model: options.model,
    async streamTurn(request, { onText, signal }): Promise<TurnResult> {
      const guard = stallGuard(signal, stallMs);
      const calls = new Map<number, { id: string; name: string; args: string }>();
      const result: TurnResult = { text: "", toolCalls: [], usage: { inputTokens: 0, outputTokens: 0 }, stopReason: "end" };
      let finished = false;
      let started = false;
      try {
        const stream = await client.chat.completions.create(
          {
            model: options.model,
            max_tokens: request.maxOutputTokens,
            messages: [{ role: "system", content: request.system }, ...toMessages(request.messages)],
            ...(request.tools.length
              ? {
                  tools: request.tools.map(
                    (t): ChatCompletionTool => ({
                      type: "function",
                      function: { name: t.name, description: t.description, parameters: t.inputSchema },
                    }),
                  ),
                }
              : {}),
            stream: true,
            stream_options: { include_usage: true },
          },
          { signal: guard.signal },
        );
        for await (const chunk of stream as AsyncIterable<ChatCompletionChunk>) {
          guard.touch();
          started = true;
          if (chunk.usage) {
            result.usage.inputTokens = chunk.usage.prompt_tokens;
            result.usage.outputTokens = chunk.usage.completion_tokens;
          }
          const choice = chunk.choices[0];
          if (!choice) continue;
          if (choice.delta.content) {
            result.text += choice.delta.content;
            onText(choice.delta.content);
          }
          for (const part of choice.delta.tool_calls ?? []) {
            const call = calls.get(part.index) ?? { id: "", name: "", args: "" };
            if (part.id) call.id = part.id;
            if (part.function?.name) call.name += part.function.name;
            if (part.function?.arguments) call.args += part.function.arguments;
            calls.set(part.index, call);
          }
          if (choice.finish_reason) {
            finished = true;
            result.stopReason =
              choice.finish_reason === "tool_calls" ? "tool_use" : choice.finish_reason === "length" ? "max_tokens" : "end";
          }
        }
      } catch (error) {
        throw mapError(error, guard.stalled, started, stallMs);
      } finally {
        guard.done();
      }
      if (signal?.aborted) throw new CoralError("model_failed", "The question was cancelled.");
      if (guard.stalled) throw stalledError(stallMs);
      if (!finished) throw new CoralError("model_stream_cut", "The model's answer stopped before its end (the stream was cut).");
      result.toolCalls = [...calls.entries()]
        .sort(([a], [b]) => a - b)
        .map(([index, call]): ToolCall => {
          const id = call.id || `call_${index}`;
          if (call.args.trim() === "") return { id, name: call.name, input: {} };
          try {
            return { id, name: call.name, input: JSON.parse(call.args) };
          } catch {
            return { id, name: call.name, input: undefined, malformed: call.args };
          }
        });
      // Some local servers say "stop" even when they called tools.
      if (result.toolCalls.length > 0) result.stopReason = "tool_use";
      return result;
    },
  };
}

function toMessages(messages: readonly ModelMessage[]): ChatCompletionMessageParam[] {
  return messages.flatMap((message): ChatCompletionMessageParam[] => {
    if (message.role === "user") return [{ role: "user", content: message.content }];
    if (message.role === "assistant") {
      return [
        {
          role: "assistant",
          content: message.text || null,
          ...(message.toolCalls.length
            ? {
                tool_calls: message.toolCalls.map((call) => ({
                  id: call.id,
                  type: "function" as const,
                  function: { name: call.name, arguments: call.malformed ?? JSON.stringify(call.input ?? {}) },
                })),
              }
            : {}),
        },
      ];
    }
    return message.results.map((r) => ({ role: "tool" as const, tool_call_id: r.callId, content: r.content }));
  });
}

function stalledError(stallMs: number): CoralError {
  return new CoralError("model_stream_cut", `The model sent nothing for ${seconds(stallMs)}; the answer was given up.`);
}

function mapError(error: unknown, stalled: boolean, started: boolean, stallMs: number): CoralError {
  if (error instanceof CoralError) return error;
  if (stalled) return stalledError(stallMs);
  if (error instanceof APIError && error.status !== undefined) {
    const body = error.error as { message?: string } | undefined;
    return providerHttpError("openai", error.status, error.headers, body?.message ?? "", error.type);
  }
  const detail = error instanceof Error ? error.message : String(error);
  if (error instanceof APIError && started) return new CoralError("model_failed", `The model failed mid-answer (${detail}).`);
  if (started) return new CoralError("model_stream_cut", `The model's answer stopped before its end (${detail}).`);
  return new CoralError("model_failed", `The OpenAI-compatible endpoint could not be reached (${detail}).`);
}
