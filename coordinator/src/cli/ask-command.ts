/**
 * `coral ask "question" [--json] [--model provider:model] [--continue]`: the answer streams to
 * stdout as it comes, tool calls show as progress on stderr, then the citations and what the
 * answer cost. `--continue` asks in the conversation of the last question (its id kept in the
 * data directory, mode 0600, for the hour the coordinator keeps it).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type AskAnswer, type AskRequest, askStreamMessageSchema, type Citation, CoralError, isErrorCode } from "@coral-mesh/sdk-proto";
import { ApiClient, type ApiTarget, defaultDataDir } from "./api-client.js";
import type { ExitCode, Io } from "./output.js";

export const CONVERSATION_FILE = "ask-conversation.json";

export interface AskOptions extends ApiTarget {
  json?: boolean;
  model?: string;
  continue?: boolean;
}

/** "model anthropic:claude-haiku-5-5 · 3,120 in / 410 out tokens · $0.0049". */
export function costLine(answer: AskAnswer): string {
  const n = (v: number) => v.toLocaleString("en-US");
  if (answer.model === "deterministic" && answer.usage.inputTokens === 0) return "answered from the findings alone, no model · $0";
  return `model ${answer.model} · ${n(answer.usage.inputTokens)} in / ${n(answer.usage.outputTokens)} out tokens · $${answer.usage.costUsd.toFixed(4)}`;
}

function citationText(c: Citation): string {
  return c.kind === "event" ? `event #${c.id}` : `${c.kind} ${c.id}`;
}

function readConversationId(dataDir: string): string {
  const file = join(dataDir, CONVERSATION_FILE);
  if (!existsSync(file)) {
    throw new CoralError("conversation_not_found", "There is no earlier question to continue: ask once without --continue first.");
  }
  try {
    return (JSON.parse(readFileSync(file, "utf8")) as { id: string }).id;
  } catch {
    throw new CoralError("conversation_not_found", `${file} is damaged: ask once without --continue to start again.`);
  }
}

function rememberConversation(dataDir: string, id: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, CONVERSATION_FILE);
  writeFileSync(file, `${JSON.stringify({ id, savedAt: Date.now() })}\n`, { mode: 0o600 });
  // The mode of `writeFileSync` applies only to a file it creates.
  chmodSync(file, 0o600);
}

/** Server-Sent Events from a response body, one `data` payload at a time. */
async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true }).replaceAll("\r\n", "\n");
    let end = buffer.indexOf("\n\n");
    while (end !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) yield data;
      end = buffer.indexOf("\n\n");
    }
  }
}

export async function ask(question: string, options: AskOptions, io: Io): Promise<ExitCode> {
  const dataDir = options.dataDir ?? defaultDataDir();
  const request: AskRequest = {
    question,
    ...(options.model ? { model: options.model } : {}),
    ...(options.continue ? { conversationId: readConversationId(dataDir) } : {}),
  };
  const response = await ApiClient.locate(options).post("/v1/ask", request);
  if (!response.body) throw new CoralError("coordinator_unreachable", "The coordinator answered POST /v1/ask with no body.");
  let answer: AskAnswer | undefined;
  let atLineStart = true;
  for await (const data of sseData(response.body)) {
    const parsed = askStreamMessageSchema.safeParse(JSON.parse(data));
    // A message of a kind newer than this CLI: skipped, as the contract only ever adds.
    if (!parsed.success) continue;
    const message = parsed.data;
    if (message.type === "text") {
      if (!options.json) io.out(message.delta);
      if (message.delta) atLineStart = message.delta.endsWith("\n");
    } else if (message.type === "tool") {
      io.err(`  … ${message.name} ${JSON.stringify(message.input)}\n`);
    } else if (message.type === "error") {
      throw new CoralError(isErrorCode(message.code) ? message.code : "internal_error", message.message);
    } else {
      answer = message.answer;
      break;
    }
  }
  if (!answer) throw new CoralError("coordinator_unreachable", "The coordinator's answer stopped before its end; ask again.");
  rememberConversation(dataDir, answer.conversationId);
  if (options.json) {
    io.out(`${JSON.stringify(answer, null, 2)}\n`);
    return 0;
  }
  if (!atLineStart) io.out("\n");
  if (answer.citations.length > 0) io.out(`\nCited: ${answer.citations.map(citationText).join(", ")}\n`);
  if (answer.note && !answer.answer.includes(answer.note)) io.out(`Note: ${answer.note}\n`);
  io.out(`${costLine(answer)}\n`);
  return 0;
}
