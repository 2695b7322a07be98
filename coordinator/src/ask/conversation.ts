/**
 * One question, answered: the opening context (findings first) after a system prompt that
 * says how to answer, then turns of the model calling tools until it answers, within a step
 * limit and an input token budget. Whatever goes into a request (the question, the context,
 * every tool result) is redacted first. A model that fails, stalls or never stops ends in the
 * deterministic answer with a note saying why, so a question always gets an answer.
 */
import { type AskAnswer, type AskStreamMessage, type Citation, CoralError, type Finding } from "@coral-mesh/sdk-proto";
import * as z from "zod";
import type { Conversation } from "./conversations.js";
import { deterministicAnswer } from "./deterministic.js";
import { type Price, turnCost } from "./pricing.js";
import type { ModelMessage, ModelProvider, ModelToolSchema, ToolCall, ToolResultMessage, TurnResult } from "./providers/provider.js";
import { retryDelay, seconds } from "./providers/provider.js";
import { redactText, redactValue } from "./redact.js";
import type { AskContext, AskTool } from "./tool.js";

export interface AskLimits {
  /** Model turns per question; the last one that still calls tools ends in the deterministic answer. */
  maxSteps: number;
  /** Input tokens per question, summed over its turns; a turn that would pass it is not sent. */
  inputTokenBudget: number;
  /** A tool result, serialised, is cut to this many characters. */
  maxToolResultChars: number;
  maxOutputTokens: number;
  /** A 429 or 529 is retried once when the provider asks to wait at most this long. */
  maxRetryWaitMs: number;
  /** A whole question, however its model trickles: past it, the model is stopped. */
  deadlineMs: number;
}

export const DEFAULT_LIMITS: AskLimits = {
  maxSteps: 8,
  inputTokenBudget: 40_000,
  maxToolResultChars: 8_000,
  maxOutputTokens: 1_024,
  maxRetryWaitMs: 10_000,
  deadlineMs: 120_000,
};

export const SYSTEM_PROMPT = `You are Coral, answering questions about a distributed application from what Coral's coordinator knows: its findings (what its deterministic detectors concluded is wrong, with evidence) and read-only tools over its store (events, services, topology, metrics).

How to answer:
- Start from the findings in the opening context. Call tools only for what they do not already say, and stop calling them as soon as you can answer.
- Name the root cause first, in one or two sentences, in plain language.
- Then the evidence, citing ids exactly as they appear: findings by id (e.g. fnd_abc), events as #id, services and agents by name.
- Then the recommended step: the finding's recommendation when there is one.
- If nothing is wrong (no finding open, and the tools show nothing unusual), say so plainly. Do not invent a problem, and do not speculate beyond the evidence.
- Be brief: a few short paragraphs at most. Secrets in the data appear as [REDACTED]; never ask for them.`;

export interface ConversationDeps {
  /** Undefined: no model is configured, and the answer is the deterministic one. */
  provider: ModelProvider | undefined;
  /** Why there is no model (said in the answer's note). */
  noModelNote?: string;
  price: Price | undefined;
  tools: readonly AskTool[];
  buildContext: (question: string) => Promise<AskContext>;
  /** The findings of these ids that still exist, in the order given. */
  findings: (ids: readonly string[]) => Finding[];
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  limits: AskLimits;
}

type Emit = (message: AskStreamMessage) => void;

/** Tool schemas for the model, from each tool's zod input. */
export function toolSchemas(tools: readonly AskTool[]): ModelToolSchema[] {
  return tools.map((tool) => {
    let schema: Record<string, unknown>;
    try {
      schema = z.toJSONSchema(tool.input, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
    } catch {
      schema = { type: "object" };
    }
    const { $schema: _, ...rest } = schema;
    return { name: tool.name, description: tool.description, inputSchema: rest.type === "object" ? rest : { type: "object", ...rest } };
  });
}

/** A rough count, for the budget before a request goes out: about four characters a token. */
function estimateTokens(system: string, messages: readonly ModelMessage[], tools: readonly ModelToolSchema[]): number {
  return Math.ceil((system.length + JSON.stringify(messages).length + JSON.stringify(tools).length) / 4);
}

function bound(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}… [cut at ${max.toLocaleString("en-US")} characters: ask for less, or page]`;
}

const key = (c: Citation) => `${c.kind}:${c.id}`;

export async function runConversation(
  deps: ConversationDeps,
  conversation: Conversation,
  rawQuestion: string,
  emit: Emit,
  signal?: AbortSignal,
): Promise<AskAnswer> {
  const question = redactText(rawQuestion);
  const context = await deps.buildContext(rawQuestion);
  const citations = new Map<string, Citation>();
  const cite = (list: readonly Citation[]) => {
    for (const c of list) citations.set(key(c), c);
  };
  cite(context.citations);
  const usage = { inputTokens: 0, outputTokens: 0, costUsd: 0 };
  const before = conversation.messages.length;
  const modelName = deps.provider ? `${deps.provider.provider}:${deps.provider.model}` : "deterministic";

  const finish = (answer: string, model: string, note?: string, leading: readonly string[] = []): AskAnswer => {
    const cited = [...citations.values()].filter((c) => c.kind === "finding").map((c) => c.id);
    const ids = [...new Set([...leading, ...cited])];
    const result: AskAnswer = {
      answer,
      citations: [...citations.values()],
      findings: deps.findings(ids),
      model,
      usage: { ...usage, costUsd: Math.round(usage.costUsd * 1e6) / 1e6 },
      conversationId: conversation.id,
      ...(note ? { note } : {}),
    };
    return result;
  };

  /** The findings' answer, after what the model said (if anything), with why. */
  const fallback = (modelText: string, note: string): AskAnswer => {
    const det = deterministicAnswer(rawQuestion, deps.findings(context.findingIds), note);
    cite(det.citations);
    const lead = modelText ? "\n\n" : "";
    const text = `${lead}${det.text}`;
    for (const line of text.split(/(?<=\n)/)) emit({ type: "text", delta: line });
    const answer = `${modelText}${text}`;
    // The history keeps one question and one answer, whatever turns failed in between.
    conversation.messages.length = before;
    conversation.messages.push({ role: "user", content: question }, { role: "assistant", text: redactText(answer), toolCalls: [] });
    return finish(
      answer,
      usage.inputTokens > 0 ? modelName : "deterministic",
      note,
      det.findings.map((f) => f.id),
    );
  };

  if (!deps.provider) return fallback("", deps.noModelNote ?? "No model is configured.");

  const opening =
    before === 0
      ? `${redactText(context.text)}\n\nQuestion: ${question}`
      : `Follow-up question: ${question}\n\n(What Coral's findings say now:)\n${redactText(context.text)}`;
  conversation.messages.push({ role: "user", content: opening });
  const tools = toolSchemas(deps.tools);
  const byName = new Map(deps.tools.map((t) => [t.name, t]));
  let said = "";
  let retried = false;
  // The provider and the tools see one signal: the caller's (a client gone) or the deadline's.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error("deadline")), deps.limits.deadlineMs);
  const onAbort = () => deadline.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  const turnSignal = deadline.signal;
  try {
    for (let step = 0; step < deps.limits.maxSteps; step++) {
      const estimate = estimateTokens(SYSTEM_PROMPT, conversation.messages, tools);
      if (usage.inputTokens + estimate > deps.limits.inputTokenBudget) {
        return fallback(
          said,
          `The question reached its budget of ${deps.limits.inputTokenBudget.toLocaleString("en-US")} input tokens before the model answered.`,
        );
      }
      let turn: TurnResult;
      let streamed = false;
      try {
        const request = { system: SYSTEM_PROMPT, messages: conversation.messages, tools, maxOutputTokens: deps.limits.maxOutputTokens };
        const onText = (delta: string) => {
          streamed = true;
          said += delta;
          emit({ type: "text", delta });
        };
        try {
          turn = await deps.provider.streamTurn(request, { onText, signal: turnSignal });
        } catch (error) {
          const wait = streamed || retried ? undefined : retryDelay(error, deps.limits.maxRetryWaitMs);
          if (wait === undefined) throw error;
          retried = true;
          await deps.sleep(wait, turnSignal);
          turn = await deps.provider.streamTurn(request, { onText, signal: turnSignal });
        }
      } catch (error) {
        if (signal?.aborted) throw new CoralError("model_failed", "The question was cancelled.");
        if (turnSignal.aborted) {
          return fallback(said, `The model took longer than ${seconds(deps.limits.deadlineMs)} to answer, so it was stopped.`);
        }
        const coral = error instanceof CoralError ? error : new CoralError("model_failed", `The model failed: ${String(error)}.`);
        return fallback(said, `[${coral.code}] ${coral.message}`);
      }
      usage.inputTokens += turn.usage.inputTokens;
      usage.outputTokens += turn.usage.outputTokens;
      usage.costUsd += turnCost(deps.price, turn.usage.inputTokens, turn.usage.outputTokens);
      conversation.messages.push({ role: "assistant", text: turn.text, toolCalls: turn.toolCalls });
      if (turn.toolCalls.length === 0) {
        if (said.trim() === "") return fallback("", "The model answered with nothing.");
        return finish(said, modelName);
      }
      const results: ToolResultMessage[] = [];
      for (const call of turn.toolCalls) results.push(await runTool(call, byName, deps.limits.maxToolResultChars, emit, cite, turnSignal));
      conversation.messages.push({ role: "tool", results });
      if (said && !said.endsWith("\n")) {
        said += "\n";
        emit({ type: "text", delta: "\n" });
      }
    }
    return fallback(said, `The model was still calling tools after ${deps.limits.maxSteps} steps, so it was stopped.`);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/** A tool call, run: unknown tools, input that does not parse or validate, and tools that throw all go back to the model as tool errors. */
async function runTool(
  call: ToolCall,
  tools: Map<string, AskTool>,
  maxChars: number,
  emit: Emit,
  cite: (list: readonly Citation[]) => void,
  signal?: AbortSignal,
): Promise<ToolResultMessage> {
  const error = (content: string): ToolResultMessage => ({ callId: call.id, content: redactText(content), isError: true });
  emit({ type: "tool", name: call.name, input: redactValue(call.input ?? call.malformed ?? null) });
  const tool = tools.get(call.name);
  if (!tool) return error(`There is no tool named "${call.name}". The tools are: ${[...tools.keys()].join(", ")}.`);
  if (call.malformed !== undefined)
    return error(`The input is not valid JSON (${bound(call.malformed, 200)}); call ${call.name} again with a JSON object.`);
  const parsed = tool.input.safeParse(call.input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`).join("; ");
    return error(`The input does not fit ${call.name}'s schema: ${issues}.`);
  }
  try {
    const result = await tool.run(parsed.data, signal);
    cite(result.citations);
    const text = JSON.stringify(redactValue(result.content)) ?? "null";
    const suffix = result.truncated ? "\n[truncated to the tool's bound: narrow the query, or page]" : "";
    return { callId: call.id, content: bound(text, maxChars) + suffix, isError: false };
  } catch (failure) {
    const message = failure instanceof CoralError ? `[${failure.code}] ${failure.message}` : "The tool failed unexpectedly.";
    return error(`${call.name} failed: ${message}`);
  }
}
