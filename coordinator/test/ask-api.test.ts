/**
 * POST /v1/ask over a real socket (the SSE as a client reads it, a bad body, auth, a client
 * that goes away) and `coral ask` against that API: the answer streamed to stdout, tool calls
 * on stderr, the citations and the cost line; --json as askAnswerSchema; --continue.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type AskStreamMessage, askAnswerSchema, askStreamMessageSchema } from "@coral-mesh/sdk-proto";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAskService } from "../src/ask/service.js";
import { CONVERSATION_FILE } from "../src/cli/ask-command.js";
import { runCli } from "../src/index.js";
import { openStore, type Store } from "../src/store/db.js";
import { askOptions, seedAskStore } from "./fixtures/ask-kit.js";
import { type FakeModel, fakeAnthropic } from "./fixtures/fake-models.js";
import { NOW } from "./fixtures/findings-seed.js";
import { modelApi } from "./fixtures/model-api.js";

const TOKEN = "a".repeat(40);

let dir: string;
let db: Store;
let anthropic: FakeModel;
let url: string;
let tokenUrl: string;
let brokenUrl: string;
let servers: Array<ReturnType<typeof serve>> = [];

function listen(app: Hono): Promise<string> {
  return new Promise((ready) => {
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) =>
      ready(`http://127.0.0.1:${info.port}`),
    );
    servers.push(server);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coral-ask-api-"));
  db = openStore(join(dir, "data", "coral.db"));
  seedAskStore(db);
  anthropic = await fakeAnthropic();
  const ask = createAskService(
    askOptions(db, { env: { ANTHROPIC_API_KEY: "test-key" }, baseUrls: { anthropic: anthropic.url }, stallMs: 5_000 }),
  );
  url = await listen(await modelApi(db, join(dir, "a"), () => NOW, { ask }));
  tokenUrl = await listen(await modelApi(db, join(dir, "b"), () => NOW, { ask, token: TOKEN }));
  const broken = createAskService(
    askOptions(db, {
      buildContext: async () => {
        throw new Error("the store is gone");
      },
    }),
  );
  brokenUrl = await listen(await modelApi(db, join(dir, "c"), () => NOW, { ask: broken }));
});

afterEach(() => {
  anthropic.requests.length = 0;
  anthropic.script();
  anthropic.otherwise = { text: ["Nothing more to say."] };
});

afterAll(async () => {
  await anthropic?.close();
  await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  servers = [];
  db?.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

function parseSse(text: string): Array<{ event: string; message: AskStreamMessage }> {
  return text
    .split("\n\n")
    .filter((block) => block.trim())
    .map((block) => {
      const lines = block.split("\n");
      const event =
        lines
          .find((l) => l.startsWith("event:"))
          ?.slice(6)
          .trim() ?? "";
      const data = lines
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trim())
        .join("\n");
      return { event, message: askStreamMessageSchema.parse(JSON.parse(data)) };
    });
}

const post = (base: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/v1/ask`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

describe("POST /v1/ask", () => {
  it("answers as Server-Sent Events, each message named by its type, the last one done", async () => {
    anthropic.script({ tools: [{ name: "list_findings", input: {} }] }, { text: ["postgres is down ", "(f2)."] });
    const response = await post(url, { question: "what is wrong?" });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const messages = parseSse(await response.text());
    expect(messages.map((m) => m.event)).toEqual(["tool", "text", "text", "done"]);
    for (const { event, message } of messages) expect(message.type).toBe(event);
    const done = messages.at(-1)?.message;
    expect(done?.type === "done" && done.answer.answer).toBe("postgres is down (f2).");
  });

  it("refuses a bad body with the API's validation error, before anything streams", async () => {
    for (const body of [{}, { question: "  " }, { question: "q", extra: 1 }, { question: "x".repeat(4001) }]) {
      const response = await post(url, body);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ code: "invalid_body" });
    }
    const notJson = await fetch(`${url}/v1/ask`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    expect(notJson.status).toBe(400);
    expect(anthropic.requests).toHaveLength(0);
  });

  it("answers an unknown model or conversation with its code, as JSON", async () => {
    const model = await post(url, { question: "q", model: "gemini:pro" });
    expect(model.status).toBe(400);
    expect(await model.json()).toMatchObject({ code: "model_unknown" });
    const conversation = await post(url, { question: "q", conversationId: "conv_gone" });
    expect(conversation.status).toBe(404);
    expect(await conversation.json()).toMatchObject({ code: "conversation_not_found" });
  });

  it("is behind the API's token like every route", async () => {
    const without = await post(tokenUrl, { question: "q" });
    expect(without.status).toBe(401);
    expect(await without.json()).toMatchObject({ code: "api_unauthorized" });
    const withToken = await post(tokenUrl, { question: "q" }, { authorization: `Bearer ${TOKEN}` });
    expect(withToken.status).toBe(200);
    expect(parseSse(await withToken.text()).at(-1)?.event).toBe("done");
  });

  it("a question that cannot be answered at all ends with an error message, last", async () => {
    const response = await post(brokenUrl, { question: "q" });
    expect(response.status).toBe(200);
    const messages = parseSse(await response.text());
    expect(messages.map((m) => m.message)).toEqual([
      { type: "error", code: "internal_error", message: "The coordinator failed unexpectedly; see its log." },
    ]);
  });

  it("a client that goes away aborts the model's call", async () => {
    anthropic.script({ text: ["Looking", " into it"], stallAfter: 4 });
    const abort = new AbortController();
    const response = await fetch(`${url}/v1/ask`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ question: "q" }),
      signal: abort.signal,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("Looking");
    abort.abort();
    const deadline = Date.now() + 10_000;
    while (anthropic.abandoned === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(anthropic.abandoned).toBe(1);
  });
});

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) }, out, err };
}

describe("coral ask", () => {
  it("streams the answer to stdout, tool calls to stderr, then the citations and the cost", async () => {
    const home = join(dir, "cli-1");
    anthropic.script(
      { tools: [{ name: "list_findings", input: { service: "postgres" } }], usage: { input: 2_500, output: 60 } },
      { text: ["postgres on db-1 is down (f2). ", "Restart it."], usage: { input: 3_120, output: 410 } },
    );
    const { io, out, err } = capture();
    const code = await runCli(["ask", "why is checkout slow since this morning?", "--api", url, "--data-dir", home], io);
    expect(err.join("")).toContain('list_findings {"service":"postgres"}');
    expect(code).toBe(0);
    // The answer arrived in pieces, each written as it came.
    expect(out.slice(0, 2)).toEqual(["postgres on db-1 is down (f2). ", "Restart it."]);
    const text = out.join("");
    expect(text).toContain("Cited: finding f2");
    // $0.10 and $0.50 per million: (5,620 × 0.1 + 470 × 0.5) / 1e6.
    expect(text).toMatch(/model anthropic:claude-haiku-5-5 · 5,620 in \/ 470 out tokens · \$0\.0008\n$/);
    expect(statSync(join(home, CONVERSATION_FILE)).mode & 0o777).toBe(0o600);
  });

  it("--json prints the answer as askAnswerSchema, and --continue asks in the same conversation", async () => {
    const home = join(dir, "cli-2");
    anthropic.script({ text: ["postgres is down (f2)."] }, { text: ["Restart postgres on db-1."] });
    const one = capture();
    expect(await runCli(["ask", "what is wrong?", "--api", url, "--data-dir", home, "--json"], one.io)).toBe(0);
    const first = askAnswerSchema.parse(JSON.parse(one.out.join("")));
    expect(first.answer).toBe("postgres is down (f2).");
    expect(first.findings.map((f) => f.id)).toContain("f2");

    const two = capture();
    expect(await runCli(["ask", "what do I do?", "--continue", "--api", url, "--data-dir", home, "--json"], two.io)).toBe(0);
    const second = askAnswerSchema.parse(JSON.parse(two.out.join("")));
    expect(second.conversationId).toBe(first.conversationId);
    expect(JSON.stringify(anthropic.requests[1]?.body.messages)).toContain("postgres is down (f2).");
  });

  it("with no model answering, says so in the note and what it cost", async () => {
    anthropic.script({ status: 500 });
    const { io, out } = capture();
    expect(await runCli(["ask", "what is wrong?", "--api", url, "--data-dir", join(dir, "cli-3")], io)).toBe(0);
    const text = out.join("");
    expect(text).toContain("Root cause: postgres stopped listening on :5432");
    expect(text).toContain("[model_failed]");
    expect(text).toMatch(/answered from the findings alone, no model · \$0\n$/);
  });

  const bin = resolve(dirname(fileURLToPath(import.meta.url)), "../bin/coral.js");
  it.skipIf(!existsSync(resolve(dirname(bin), "../dist/cli.js")) && !process.env.CORAL_REQUIRE_ALL)(
    "the real binary: the answer on stdout, progress on stderr, exit 0",
    async () => {
      anthropic.script(
        { tools: [{ name: "list_findings", input: {} }] },
        { text: ["postgres is down (f2)."], usage: { input: 1_000, output: 10 } },
      );
      const { stdout, stderr } = await promisify(execFile)(
        process.execPath,
        [bin, "ask", "what is wrong?", "--api", url, "--data-dir", join(dir, "bin")],
        {
          env: { ...process.env, CORAL_API_TOKEN: "" },
        },
      );
      expect(stderr).toContain("list_findings {}");
      expect(stdout).toMatch(/^postgres is down \(f2\)\.\n\nCited: finding f2/);
      expect(stdout).toMatch(/model anthropic:claude-haiku-5-5 · [\d,]+ in \/ [\d,]+ out tokens · \$0\.\d{4}\n$/);
    },
    30_000,
  );

  it("errors print their code and the fix", async () => {
    const continued = capture();
    expect(await runCli(["ask", "q", "--continue", "--api", url, "--data-dir", join(dir, "cli-none")], continued.io)).toBe(1);
    expect(continued.err.join("")).toMatch(/^coral: \[conversation_not_found\] There is no earlier question to continue/);
    const model = capture();
    expect(await runCli(["ask", "q", "--model", "gemini:pro", "--api", url, "--data-dir", join(dir, "cli-4")], model.io)).toBe(1);
    expect(model.err.join("")).toMatch(/^coral: \[model_unknown\] "gemini:pro" names no model/);
  });
});
