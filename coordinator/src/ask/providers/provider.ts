/**
 * The one seam between a conversation and a model provider: one turn in (system prompt,
 * messages, tool schemas), text deltas out as they stream, then the tool calls, the usage and
 * why the turn stopped. Each provider maps its own wire format and errors onto this.
 */
import { CoralError } from "@coral-mesh/sdk-proto";

export type ProviderName = "anthropic" | "openai";
export const providerNames: readonly ProviderName[] = ["anthropic", "openai"];

export interface ModelToolSchema {
  name: string;
  description: string;
  /** JSON Schema of the tool's input object. */
  inputSchema: Record<string, unknown>;
}

export interface ToolCall {
  /** The provider's id for the call, echoed with its result. */
  id: string;
  name: string;
  /** The parsed input; undefined when `malformed` is set. */
  input: unknown;
  /** The raw input text, when it was not valid JSON. */
  malformed?: string;
}

export interface ToolResultMessage {
  callId: string;
  /** What the tool returned, serialised, redacted and bounded. */
  content: string;
  isError: boolean;
}

export type ModelMessage =
  | { role: "user"; content: string }
  | { role: "assistant"; text: string; toolCalls: ToolCall[] }
  | { role: "tool"; results: ToolResultMessage[] };

export interface TurnRequest {
  system: string;
  messages: readonly ModelMessage[];
  tools: readonly ModelToolSchema[];
  maxOutputTokens: number;
}

export interface TurnUsage {
  inputTokens: number;
  outputTokens: number;
}

export interface TurnResult {
  text: string;
  toolCalls: ToolCall[];
  usage: TurnUsage;
  /** `tool_use`: it wants the calls' results; `end`: it answered; `max_tokens`: it was cut at the output limit. */
  stopReason: "end" | "tool_use" | "max_tokens";
}

export interface TurnOptions {
  onText: (delta: string) => void;
  signal?: AbortSignal;
}

export interface ModelProvider {
  readonly provider: ProviderName;
  readonly model: string;
  streamTurn(request: TurnRequest, options: TurnOptions): Promise<TurnResult>;
}

export interface ProviderOptions {
  model: string;
  apiKey: string | undefined;
  /** Where the provider's API is (tests point it at a fake on loopback). */
  baseUrl?: string | undefined;
  /** Longest silence within a stream, and before it starts, before the turn is given up as stalled. */
  stallMs?: number;
}

export const DEFAULT_STALL_MS = 30_000;
/** A local model on a CPU can take a minute to read a long prompt before its first token. */
export const LOCAL_STALL_MS = 120_000;

/** `anthropic:claude-haiku-5-5` → its parts; model_unknown for anything else. */
export function parseModel(spec: string): { provider: ProviderName; model: string } {
  const at = spec.indexOf(":");
  const provider = spec.slice(0, at) as ProviderName;
  const model = spec.slice(at + 1);
  if (at <= 0 || !providerNames.includes(provider) || !/^\S+$/.test(model)) {
    throw new CoralError(
      "model_unknown",
      `"${spec}" names no model Coral can use: write provider:model, e.g. anthropic:claude-haiku-5-5, or openai:llama3.1 for an OpenAI-compatible endpoint such as Ollama.`,
    );
  }
  return { provider, model };
}

/**
 * A signal that aborts when `outer` does, or when `stallMs` pass without `touch()`: what
 * keeps a stream that stops sending from hanging the question.
 */
export function stallGuard(outer: AbortSignal | undefined, stallMs: number) {
  const controller = new AbortController();
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort(new Error("stalled"));
    }, stallMs);
  };
  const onAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  else outer?.addEventListener("abort", onAbort, { once: true });
  touch();
  return {
    signal: controller.signal,
    touch,
    get stalled() {
      return stalled;
    },
    done() {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    },
  };
}

/** "30 s", "0.3 s": a span in messages. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toLocaleString("en-US", { maximumFractionDigits: 1 })} s`;
}

/** Seconds or an HTTP date, as `retry-after` carries them, in ms; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * An HTTP failure of the provider as a CoralError with a stable code; `retryAfterMs` in the
 * details when the provider said when to come back.
 */
export function providerHttpError(
  name: ProviderName,
  status: number | undefined,
  headers: { get(name: string): string | null } | undefined,
  detail: string,
  type?: string,
): CoralError {
  const label = name === "anthropic" ? "Anthropic" : "The OpenAI-compatible endpoint";
  const wait = retryAfterMs(headers?.get("retry-after"));
  const details = wait === undefined ? { status } : { status, retryAfterMs: wait };
  if (status === 429) {
    return new CoralError(
      "model_rate_limited",
      `${label} rate-limited this request${wait === undefined ? "" : ` (retry after ${Math.ceil(wait / 1000)} s)`}; ask again later.`,
      { details },
    );
  }
  if (status === 529 || status === 503 || type === "overloaded_error") {
    return new CoralError("model_overloaded", `${label} is overloaded (HTTP ${status ?? "error"}); ask again in a minute.`, { details });
  }
  if (status === 401 || status === 403) {
    return new CoralError(
      "model_unauthorized",
      `${label} refused the API key (HTTP ${status}); check ANTHROPIC_API_KEY or OPENAI_API_KEY, or ask.apiKeyFile (docs/ask.md).`,
      { details },
    );
  }
  return new CoralError("model_failed", `${label} failed (HTTP ${status ?? "error"}${detail ? `: ${detail.slice(0, 200)}` : ""}).`, {
    details,
  });
}

/** Whether a failure is worth one more try, and after how long. */
export function retryDelay(error: unknown, maxWaitMs: number): number | undefined {
  if (!(error instanceof CoralError)) return undefined;
  if (error.code !== "model_rate_limited" && error.code !== "model_overloaded") return undefined;
  const wait = (error.details as { retryAfterMs?: number } | undefined)?.retryAfterMs;
  // Overloaded without a retry-after: a short pause is what the provider's own SDKs do.
  const ms = wait ?? (error.code === "model_overloaded" ? 1_000 : undefined);
  return ms !== undefined && ms <= maxWaitMs ? ms : undefined;
}
