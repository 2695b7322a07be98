/**
 * `coral ask`'s conversation against fake providers on loopback that speak Anthropic's and
 * OpenAI's streaming wire formats, over a real store: the tool loop to an answer with
 * citations, each way a model fails, the step limit and the token budget, no key at all, a
 * planted secret that never reaches a request, and follow-ups kept for an hour.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AskAnswer, type AskStreamMessage, askAnswerSchema, CoralError } from "@coral-mesh/sdk-proto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createConversations } from "../src/ask/conversations.js";
import { createAskService } from "../src/ask/service.js";
import { openStore, type Store } from "../src/store/db.js";
import { findingsByIds } from "../src/store/finding-queries.js";
import { askOptions, SECRETS, seedAskStore } from "./fixtures/ask-kit.js";
import { type FakeModel, fakeAnthropic, fakeOpenAI } from "./fixtures/fake-models.js";
import { NOW } from "./fixtures/findings-seed.js";

let dir: string;
let db: Store;
let emptyDb: Store;
let secretEvent: number;
let anthropic: FakeModel;
let openai: FakeModel;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coral-ask-"));
  db = openStore(join(dir, "data", "coral.db"));
  secretEvent = seedAskStore(db);
  emptyDb = openStore(join(dir, "empty", "coral.db"));
  [anthropic, openai] = await Promise.all([fakeAnthropic(), fakeOpenAI()]);
});

afterEach(() => {
  for (const fake of [anthropic, openai]) {
    fake.requests.length = 0;
    fake.script();
    fake.otherwise = { text: ["Nothing more to say."] };
  }
});

afterAll(async () => {
  await Promise.all([anthropic?.close(), openai?.close()]);
  db?.$client.close();
  emptyDb?.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

const KEY = { ANTHROPIC_API_KEY: "test-key-not-a-real-one" };

function service(extra: Parameters<typeof askOptions>[1] = {}, store = db) {
  return createAskService(askOptions(store, { env: KEY, baseUrls: { anthropic: anthropic.url, openai: openai.url }, ...extra }));
}

async function ask(
  svc: ReturnType<typeof service>,
  question: string,
  more: { model?: string; conversationId?: string } = {},
): Promise<{ answer: AskAnswer; messages: AskStreamMessage[]; text: string }> {
  const messages: AskStreamMessage[] = [];
  const answer = await svc.prepare({ question, ...more }).run((m) => messages.push(m));
  askAnswerSchema.parse(answer);
  const text = messages.flatMap((m) => (m.type === "text" ? [m.delta] : [])).join("");
  return { answer, messages, text };
}

const toolResults = (fake: FakeModel, n: number) => JSON.stringify(((fake.requests[n]?.body.messages ?? []) as unknown[]).at(-1));

describe("the tool loop", () => {
  it("Anthropic: calls a tool, gets its result, answers with the evidence cited, and counts tokens and cost", async () => {
    anthropic.script(
      { tools: [{ name: "get_event", input: { id: secretEvent } }], usage: { input: 2_000, output: 40 } },
      {
        text: ["postgres on db-1 stopped listening (f2). ", "Evidence: its restart, #3.", " Restart postgres on db-1."],
        usage: { input: 2_600, output: 120 },
      },
    );
    const { answer, messages, text } = await ask(service(), "why is checkout slow since this morning?");
    expect(answer.answer).toBe(text);
    expect(answer.answer).toContain("postgres on db-1 stopped listening (f2)");
    expect(answer.model).toBe("anthropic:claude-haiku-5-5");
    expect(answer.note).toBeUndefined();
    expect(answer.citations).toContainEqual({ kind: "finding", id: "f2" });
    expect(answer.citations).toContainEqual({ kind: "event", id: String(secretEvent) });
    expect(answer.findings.map((f) => f.id)).toContain("f2");
    // $0.10 in and $0.50 out per million tokens.
    expect(answer.usage).toEqual({ inputTokens: 4_600, outputTokens: 160, costUsd: 0.00054 });
    expect(messages.findIndex((m) => m.type === "tool")).toBeLessThan(messages.findIndex((m) => m.type === "text"));
    expect(messages.find((m) => m.type === "tool")).toEqual({ type: "tool", name: "get_event", input: { id: secretEvent } });

    expect(anthropic.requests).toHaveLength(2);
    const first = anthropic.requests[0]?.body as Record<string, unknown>;
    expect(first.stream).toBe(true);
    expect(String(first.system)).toContain("root cause");
    expect(JSON.stringify(first.messages)).toContain("Open findings");
    expect(first.tools).toContainEqual(
      expect.objectContaining({ name: "get_event", input_schema: expect.objectContaining({ type: "object" }) }),
    );
    expect(toolResults(anthropic, 1)).toContain("tool_result");
    expect(toolResults(anthropic, 1)).toContain("process.started");
  });

  it("OpenAI-compatible (a local model): the same loop through chat completions, at no cost", async () => {
    openai.script({ tools: [{ name: "list_findings", input: { service: "postgres" } }] }, { text: ["postgres is down (f2)."] });
    const { answer } = await ask(service({ settings: { model: "openai:llama3.1" } }), "what is wrong?");
    expect(answer.model).toBe("openai:llama3.1");
    expect(answer.answer).toBe("postgres is down (f2).");
    expect(answer.usage.inputTokens).toBeGreaterThan(0);
    expect(answer.usage.costUsd).toBe(0);
    expect(openai.requests).toHaveLength(2);
    const body = openai.requests[1]?.body as { messages: Array<{ role: string; tool_call_id?: string }>; tools: unknown[] };
    expect(body.messages[0]?.role).toBe("system");
    expect(body.messages.at(-1)).toMatchObject({ role: "tool", tool_call_id: "call_1_0" });
    expect(body.tools).toContainEqual(expect.objectContaining({ type: "function" }));
    expect(anthropic.requests).toHaveLength(0);
  });

  it("--model picks the provider per question", async () => {
    openai.script({ text: ["from the local model"] });
    const { answer } = await ask(service(), "what is wrong?", { model: "openai:qwen3" });
    expect(answer.model).toBe("openai:qwen3");
    expect(openai.requests[0]?.body.model).toBe("qwen3");
  });

  it("a model string that names no provider is refused before anything is sent", () => {
    expect(() => service().prepare({ question: "q", model: "gemini:pro" })).toThrow(expect.objectContaining({ code: "model_unknown" }));
  });
});

describe("model errors end in a clear note and the answer from the findings", () => {
  it("429 with a short retry-after: waits as told, once, and the model answers", async () => {
    const waits: number[] = [];
    anthropic.script({ status: 429, headers: { "retry-after": "2" } }, { text: ["postgres is down (f2)."] });
    const { answer } = await ask(service({ sleep: async (ms) => void waits.push(ms) }), "what is wrong?");
    expect(waits).toEqual([2_000]);
    expect(answer.answer).toBe("postgres is down (f2).");
    expect(anthropic.requests).toHaveLength(2);
  });

  it("429 with a long retry-after: no waiting; the findings' answer, with the wait in the note", async () => {
    const waits: number[] = [];
    anthropic.script({ status: 429, headers: { "retry-after": "120" } });
    const { answer, text } = await ask(service({ sleep: async (ms) => void waits.push(ms) }), "what is wrong?");
    expect(waits).toEqual([]);
    expect(answer.model).toBe("deterministic");
    expect(answer.note).toMatch(/^\[model_rate_limited\] .*retry after 120 s/);
    expect(text).toContain("Root cause: postgres stopped listening on :5432");
    expect(text).toContain("A configured model would explain more");
  });

  it("529 overloaded: retried once, then the findings' answer", async () => {
    const waits: number[] = [];
    anthropic.script({ status: 529 }, { status: 529 });
    const { answer } = await ask(service({ sleep: async (ms) => void waits.push(ms) }), "what is wrong?");
    expect(waits).toHaveLength(1);
    expect(anthropic.requests).toHaveLength(2);
    expect(answer.note).toMatch(/^\[model_overloaded\]/);
    expect(answer.answer).toContain("Recommended step: restart postgres on db-1.");
  });

  it("500: not retried; model_failed", async () => {
    anthropic.script({ status: 500 });
    const { answer } = await ask(service(), "what is wrong?");
    expect(anthropic.requests).toHaveLength(1);
    expect(answer.note).toMatch(/^\[model_failed\] Anthropic failed \(HTTP 500/);
  });

  it("401: the key is refused, said as such", async () => {
    anthropic.script({ status: 401 });
    const { answer } = await ask(service(), "what is wrong?");
    expect(answer.note).toMatch(/^\[model_unauthorized\]/);
  });

  it("a stream cut mid-answer keeps what arrived, then the findings' answer", async () => {
    // message_start, ping, block start, two deltas, then the connection drops.
    anthropic.script({ text: ["The root cause is", " postgres", " on db-1 because"], cutAfter: 5 });
    const { answer, text } = await ask(service(), "what is wrong?");
    expect(text.startsWith("The root cause is postgres")).toBe(true);
    expect(answer.answer).toBe(text);
    expect(answer.note).toMatch(/^\[model_stream_cut\]/);
    expect(answer.answer).toContain("Root cause: postgres stopped listening");
  });

  it("an error event inside the stream (overloaded after the 200) keeps what arrived; no retry once text is shown", async () => {
    const waits: number[] = [];
    anthropic.script({ text: ["Looking at", " postgres"], errorAfter: { events: 4, type: "overloaded_error" } });
    const { answer, text } = await ask(service({ sleep: async (ms) => void waits.push(ms) }), "what is wrong?");
    expect(text.startsWith("Looking at")).toBe(true);
    expect(waits).toEqual([]);
    expect(answer.note).toMatch(/^\[model_overloaded\]/);
    expect(answer.answer).toContain("Root cause:");
  });

  it("a stream that stalls is given up after the stall timeout, not waited on for ever", async () => {
    openai.script({ text: ["Looking", " at it"], stallAfter: 2 });
    const { answer } = await ask(service({ settings: { model: "openai:llama3.1" }, stallMs: 300 }), "what is wrong?");
    expect(answer.note).toMatch(/^\[model_stream_cut\] The model sent nothing for 0.3 s/);
  });

  it("a model that trickles is stopped at the question's deadline", async () => {
    anthropic.script({ text: ["Thinking"], stallAfter: 4 });
    const { answer, text } = await ask(service({ stallMs: 60_000, limits: { deadlineMs: 300 } }), "what is wrong?");
    expect(text.startsWith("Thinking")).toBe(true);
    expect(answer.note).toBe("The model took longer than 0.3 s to answer, so it was stopped.");
    expect(answer.answer).toContain("Root cause:");
  });

  it("the same errors from an OpenAI-compatible server", async () => {
    openai.script({ status: 429, headers: { "retry-after": "600" } });
    const svc = service({ settings: { model: "openai:llama3.1" } });
    expect((await ask(svc, "q")).answer.note).toMatch(/^\[model_rate_limited\]/);
    openai.script({ status: 500 });
    expect((await ask(svc, "q")).answer.note).toMatch(/^\[model_failed\]/);
    openai.script({ text: ["partial"], cutAfter: 2 });
    expect((await ask(svc, "q")).answer.note).toMatch(/^\[model_stream_cut\]/);
  });

  it("the endpoint not listening at all: model_failed, still an answer", async () => {
    const { answer } = await ask(service({ baseUrls: { anthropic: "http://127.0.0.1:9" } }), "what is wrong?");
    expect(answer.note).toMatch(/^\[model_failed\] Anthropic could not be reached/);
    expect(answer.answer).toContain("Root cause:");
  });
});

describe("tool calls that go wrong go back to the model as tool errors", () => {
  it("input that is not JSON", async () => {
    anthropic.script({ tools: [{ name: "get_event", raw: '{"id": 3' }] }, { text: ["Answer."] });
    const { answer } = await ask(service(), "q");
    expect(answer.answer).toBe("Answer.");
    expect(toolResults(anthropic, 1)).toContain('"is_error":true');
    expect(toolResults(anthropic, 1)).toContain("not valid JSON");
  });

  it("input that is not JSON, from an OpenAI-compatible server", async () => {
    openai.script({ tools: [{ name: "get_event", raw: "{id: 3}" }] }, { text: ["Answer."] });
    const { answer } = await ask(service({ settings: { model: "openai:m" } }), "q");
    expect(answer.answer).toBe("Answer.");
    const sent = openai.requests[1]?.body.messages as Array<{ role: string; content?: string; tool_calls?: unknown[] }>;
    expect(sent.at(-2)?.tool_calls).toEqual([{ id: "call_1_0", type: "function", function: { name: "get_event", arguments: "{id: 3}" } }]);
    expect(sent.at(-1)?.content).toContain("not valid JSON");
  });

  it("input that does not fit the schema", async () => {
    openai.script({ tools: [{ name: "get_event", input: { id: "three" } }] }, { text: ["Answer."] });
    await ask(service({ settings: { model: "openai:m" } }), "q");
    expect(toolResults(openai, 1)).toContain("does not fit get_event's schema");
  });

  it("a tool the model made up", async () => {
    anthropic.script({ tools: [{ name: "drop_tables", input: {} }] }, { text: ["Answer."] });
    const { answer } = await ask(service(), "q");
    expect(answer.answer).toBe("Answer.");
    expect(toolResults(anthropic, 1)).toContain('There is no tool named \\"drop_tables\\". The tools are: get_event, list_findings.');
  });
});

describe("limits", () => {
  it("a model that never stops calling tools is stopped after 8 steps, with the findings' answer", async () => {
    anthropic.otherwise = { tools: [{ name: "list_findings", input: {} }], usage: { input: 1_000, output: 20 } };
    const { answer, messages } = await ask(service(), "what is wrong?");
    expect(anthropic.requests).toHaveLength(8);
    expect(messages.filter((m) => m.type === "tool")).toHaveLength(8);
    expect(answer.note).toBe("The model was still calling tools after 8 steps, so it was stopped.");
    expect(answer.answer).toContain("Root cause:");
    expect(answer.model).toBe("anthropic:claude-haiku-5-5");
    expect(answer.usage.inputTokens).toBe(8_000);
  });

  it("the input token budget stops a question before the request that would pass it", async () => {
    anthropic.otherwise = { tools: [{ name: "list_findings", input: {} }], usage: { input: 1_500, output: 20 } };
    const { answer } = await ask(service({ limits: { inputTokenBudget: 3_500 } }), "what is wrong?");
    expect(anthropic.requests.length).toBeLessThan(3);
    expect(answer.note).toMatch(/budget of 3,500 input tokens/);
  });

  it("a tool result is cut to its bound", async () => {
    anthropic.script({ tools: [{ name: "list_findings", input: {} }] }, { text: ["Answer."] });
    await ask(service({ limits: { maxToolResultChars: 100 } }), "q");
    expect(toolResults(anthropic, 1)).toContain("[cut at 100 characters");
  });
});

describe("without a model", () => {
  it("no key: answers from the findings alone, deterministically, and says a model would explain more", async () => {
    const svc = service({ env: {} });
    const one = await ask(svc, "why is web failing?");
    const two = await ask(svc, "why is web failing?");
    expect(anthropic.requests).toHaveLength(0);
    expect(one.answer.model).toBe("deterministic");
    expect(one.answer.usage).toEqual({ inputTokens: 0, outputTokens: 0, costUsd: 0 });
    expect(one.answer.note).toMatch(/No model is configured: no ANTHROPIC_API_KEY/);
    expect(one.answer.answer).toBe(two.answer.answer);
    // The question names web, so web's finding leads, with its evidence by id and its step.
    expect(one.text).toMatch(
      /^Root cause: web's health check db fails \(dependency-down on postgres@db-1; warning, confidence 80%; finding f3, caused by finding f2\)/,
    );
    expect(one.text).toContain("Evidence: events #3 (process.restarted on web-1)");
    expect(one.text).toContain("Recommended step: bring postgres back; web follows.");
    expect(one.answer.citations).toEqual(
      expect.arrayContaining([
        { kind: "finding", id: "f3" },
        { kind: "event", id: "3" },
      ]),
    );
    expect(one.answer.findings[0]?.id).toBe("f3");
  });

  it("the answer's findings are looked up by id, in the order cited, missing ones left out", () => {
    expect(findingsByIds(db, ["f3", "gone", "f2", "f3"]).map((f) => f.id)).toEqual(["f3", "f2", "f3"]);
    expect(findingsByIds(db, [])).toEqual([]);
  });

  it("nothing open: says nothing is wrong rather than inventing a cause", async () => {
    const { answer } = await ask(service({ env: {} }, emptyDb), "why is checkout slow?");
    expect(answer.answer).toMatch(/^Coral sees nothing wrong: no finding is open/);
    expect(answer.answer).not.toContain("Root cause:");
  });

  it("an openai model with no base URL and no key is no model either", async () => {
    const { answer } = await ask(service({ settings: { model: "openai:llama3.1" }, baseUrls: {} }), "q");
    expect(answer.model).toBe("deterministic");
    expect(answer.note).toMatch(/ask.baseUrl/);
  });
});

describe("the key file", () => {
  it("is used when the environment has no key, and must be mode 0600", async () => {
    const file = join(dir, "anthropic.key");
    writeFileSync(file, "file-key-0123\n", { mode: 0o600 });
    anthropic.script({ text: ["ok"] });
    await ask(service({ env: {}, settings: { model: "anthropic:claude-haiku-5-5", apiKeyFile: file } }), "q");
    // This SDK sends the key as a bearer token.
    expect(anthropic.requests.map((r) => r.headers["x-api-key"] ?? r.headers.authorization)).toEqual(["Bearer file-key-0123"]);
    // A question naming another provider does not get the configured provider's key.
    openai.script({ text: ["ok"] });
    await ask(service({ env: {}, settings: { model: "anthropic:claude-haiku-5-5", apiKeyFile: file } }), "q", { model: "openai:llama3.1" });
    expect(JSON.stringify(openai.requests.map((r) => r.headers))).not.toContain("file-key-0123");
    chmodSync(file, 0o644);
    const svc = service({ env: {}, settings: { model: "anthropic:claude-haiku-5-5", apiKeyFile: file } });
    expect(() => svc.prepare({ question: "q" })).toThrow(expect.objectContaining({ code: "key_permissions" }));
  });
});

describe("nothing secret leaves the host", () => {
  it("a secret planted in the store and in the context never appears in any request body", async () => {
    anthropic.script(
      { tools: [{ name: "get_event", input: { id: secretEvent } }] },
      { tools: [{ name: "list_findings", input: {} }] },
      { text: ["Done."] },
    );
    openai.script({ tools: [{ name: "get_event", input: { id: secretEvent } }] }, { text: ["Done."] });
    const one = await ask(service(), `is --password=${SECRETS[0]} the problem?`);
    const two = await ask(service({ settings: { model: "openai:llama3.1" } }), "what about postgres?");
    const bodies = [...anthropic.requests, ...openai.requests].map((r) => r.raw);
    expect(bodies).toHaveLength(5);
    for (const body of bodies) for (const secret of SECRETS) expect(body).not.toContain(secret);
    // The tool result did reach the model, redacted.
    expect(bodies[1]).toContain("--password=[REDACTED]");
    expect(bodies[1]).toContain("DB_PASSWORD=[REDACTED]");
    for (const secret of SECRETS) expect(JSON.stringify([one, two])).not.toContain(secret);
  });
});

describe("follow-up questions", () => {
  it("are kept up to a bound, the least recently used dropped first", () => {
    const kept = createConversations({ max: 2 });
    const [a, b, c] = [kept.create(), kept.create(), kept.create()];
    kept.save(a);
    kept.save(b);
    kept.save(a);
    kept.save(c);
    expect(kept.size).toBe(2);
    expect(kept.get(a.id)).toBe(a);
    expect(() => kept.get(b.id)).toThrow(expect.objectContaining({ code: "conversation_not_found" }));
  });

  it("keep the conversation, and it expires an hour after the last question", async () => {
    let now = NOW;
    const svc = service({ now: () => now });
    anthropic.script({ text: ["postgres is down (f2)."] }, { text: ["Restart it on db-1."] });
    const first = await ask(svc, "what is wrong?");
    now += 59 * 60_000;
    const second = await ask(svc, "and what do I do?", { conversationId: first.answer.conversationId });
    expect(second.answer.conversationId).toBe(first.answer.conversationId);
    const sent = JSON.stringify(anthropic.requests[1]?.body.messages);
    expect(sent).toContain("what is wrong?");
    expect(sent).toContain("postgres is down (f2).");
    expect(sent).toContain("Follow-up question: and what do I do?");
    now += 60 * 60_000 + 1;
    let error: unknown;
    try {
      svc.prepare({ question: "and then?", conversationId: first.answer.conversationId });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CoralError);
    expect((error as CoralError).code).toBe("conversation_not_found");
    expect(() => svc.prepare({ question: "q", conversationId: "conv_nope" })).toThrow(
      expect.objectContaining({ code: "conversation_not_found" }),
    );
  });
});
