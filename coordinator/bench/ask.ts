/**
 * `coral ask` against a fake Anthropic on loopback that answers at once, so what is timed is
 * Coral's own part: the CLI's request, the API, the opening context, the tool calls, the
 * requests to the provider and the SSE back. A real store seeded with the findings fixture;
 * the API served on 127.0.0.1; `coral ask` run in-process (runCli), the clock read when its
 * first piece of answer is written.
 *
 * 1. Time to the first streamed token, median and p95 of N: a question the model answers at
 *    once, and a question of three turns (two tool calls, then the answer).
 *    And the same from the built binary (`node bin/coral.js ask`, when dist/ is built), spawned
 *    as a user runs it: its start-up counted too.
 * 2. Tokens per question: the fake counts a request's input tokens as its body's length / 4
 *    (what was actually sent: the system prompt, the context, the tool schemas and results);
 *    output tokens are scripted as a model of this size writes them (60 per tool call, 350 for
 *    the answer). Then the cost at the default model's list price, per question and per day of
 *    20 questions, beside the other models.
 * Targets: first token < 300 ms; a question < $0.02 on average; < $1 a day at 20 questions.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { buildAskContext } from "../src/ask/context.js";
import { DEFAULT_MODEL, PRICES_CHECKED, priceOf, turnCost } from "../src/ask/pricing.js";
import { parseModel } from "../src/ask/providers/provider.js";
import { createAskService } from "../src/ask/service.js";
import { createAskTools } from "../src/ask/tools.js";
import { runCli } from "../src/cli/program.js";
import { openStore } from "../src/store/db.js";
import { listFindings } from "../src/store/finding-queries.js";
import { askFindings, seedAskStore } from "../test/fixtures/ask-kit.js";
import { fakeAnthropic } from "../test/fixtures/fake-models.js";
import { NOW } from "../test/fixtures/findings-seed.js";
import { modelApi } from "../test/fixtures/model-api.js";

export interface AskBenchOptions {
  out: (line: string) => void;
  questions?: number;
}

const QUESTIONS_A_DAY = 20;
const pct = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))] ?? Number.NaN;
const fmt = (n: number, digits = 1) => n.toFixed(digits);

export async function askBench(options: AskBenchOptions): Promise<{ firstTokenMs: number; costUsd: number }> {
  const n = options.questions ?? 30;
  const dir = mkdtempSync(join(tmpdir(), "coral-bench-ask-"));
  const db = openStore(join(dir, "coral.db"));
  const anthropic = await fakeAnthropic();
  let server: ReturnType<typeof serve> | undefined;
  try {
    seedAskStore(db);
    const ask = createAskService({
      settings: { model: DEFAULT_MODEL },
      // The coordinator's own tools and opening context over the seeded store.
      tools: createAskTools({ db, now: () => NOW }),
      buildContext: (question) => buildAskContext({ db, now: () => NOW }, question),
      findings: askFindings(db),
      env: { ANTHROPIC_API_KEY: "bench-key" },
      baseUrls: { anthropic: anthropic.url },
    });
    const app = await modelApi(db, dir, () => NOW, { ask });
    const url = await new Promise<string>((ready) => {
      server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => ready(`http://127.0.0.1:${info.port}`));
    });
    const answerText = Array.from({ length: 12 }, (_, i) => `part ${i} of the answer, citing f2 and #3. `);

    const run = async (): Promise<{ firstMs: number; usage: { inputTokens: number; outputTokens: number } }> => {
      let first = Number.NaN;
      let json = "";
      const started = performance.now();
      const code = await runCli(["ask", "why is checkout slow since this morning?", "--api", url, "--data-dir", dir], {
        out: (text) => {
          if (Number.isNaN(first)) first = performance.now() - started;
          json += text;
        },
        err: () => {},
      });
      if (code !== 0) throw new Error(`coral ask exited ${code}: ${json}`);
      const usage = /· ([\d,]+) in \/ ([\d,]+) out tokens/.exec(json);
      return {
        firstMs: first,
        usage: { inputTokens: Number(usage?.[1]?.replaceAll(",", "")), outputTokens: Number(usage?.[2]?.replaceAll(",", "")) },
      };
    };

    // Warm-up: the first run loads modules and opens connections.
    anthropic.script({ text: answerText, usage: { output: 350 } });
    await run();
    const direct: number[] = [];
    for (let i = 0; i < n; i++) {
      anthropic.script({ text: answerText, usage: { output: 350 } });
      direct.push((await run()).firstMs);
    }
    const firstFinding = listFindings(db)[0]?.id ?? "f1";
    const threeTurns: number[] = [];
    const usages: Array<{ inputTokens: number; outputTokens: number }> = [];
    for (let i = 0; i < n; i++) {
      anthropic.script(
        { tools: [{ name: "list_findings", input: {} }], usage: { output: 60 } },
        { tools: [{ name: "get_finding", input: { id: firstFinding } }], usage: { output: 60 } },
        { text: answerText, usage: { output: 350 } },
      );
      const r = await run();
      threeTurns.push(r.firstMs);
      usages.push(r.usage);
    }
    // Priced per turn, as billed: the three requests' input sizes from the fake's record.
    const lastThree = anthropic.requests.slice(-3).map((r) => Math.ceil(r.raw.length / 4));
    // The binary as a user runs it, start-up included (it needs dist/: `npm run build`).
    const bin = resolve(dirname(fileURLToPath(import.meta.url)), "../bin/coral.js");
    const spawned: number[] = [];
    if (existsSync(resolve(dirname(bin), "../dist/cli.js"))) {
      for (let i = 0; i < Math.min(n, 10); i++) {
        anthropic.script({ text: answerText, usage: { output: 350 } });
        spawned.push(
          await new Promise<number>((done, fail) => {
            const started = performance.now();
            let first = Number.NaN;
            const child = spawn(process.execPath, [bin, "ask", "why is checkout slow?", "--api", url, "--data-dir", dir], {
              stdio: ["ignore", "pipe", "ignore"],
            });
            child.stdout.once("data", () => {
              first = performance.now() - started;
            });
            child.stdout.resume();
            child.once("error", fail);
            child.once("exit", (code) => (code === 0 ? done(first) : fail(new Error(`coral ask exited ${code}`))));
          }),
        );
      }
    }
    const mean = (pick: (u: { inputTokens: number; outputTokens: number }) => number) =>
      usages.reduce((s, u) => s + pick(u), 0) / usages.length;
    const inTokens = mean((u) => u.inputTokens);
    const outTokens = mean((u) => u.outputTokens);
    const costWith = (spec: string) => {
      const { provider, model } = parseModel(spec);
      const price = priceOf(provider, model);
      return lastThree.reduce((sum, input, i) => sum + turnCost(price, input, i < 2 ? 60 : 350), 0);
    };
    const cost = costWith(DEFAULT_MODEL);
    const firstToken = pct(direct, 50);
    options.out(
      [
        `Ask: \`coral ask\` in-process against the API on loopback and a fake Anthropic that answers at once (${n} questions each)`,
        `  first streamed token, a one-turn answer: median ${fmt(firstToken)} ms, p95 ${fmt(pct(direct, 95))} ms`,
        `  first streamed token, after two tool calls: median ${fmt(pct(threeTurns, 50))} ms, p95 ${fmt(pct(threeTurns, 95))} ms`,
        spawned.length
          ? `  first streamed token from the binary (node bin/coral.js ask, its start-up included): median ${fmt(pct(spawned, 50))} ms, p95 ${fmt(pct(spawned, 95))} ms of ${spawned.length}`
          : "  (the binary not timed: dist/ is not built; npm run build)",
        `  tokens per question of three turns: ${Math.round(inTokens).toLocaleString("en-US")} in (${lastThree.map((t) => t.toLocaleString("en-US")).join(" + ")}), ${Math.round(outTokens)} out`,
        `  cost at list prices (${PRICES_CHECKED}): ${DEFAULT_MODEL} $${cost.toFixed(4)} a question, $${(cost * QUESTIONS_A_DAY).toFixed(3)} a day at ${QUESTIONS_A_DAY} questions`,
        `    for comparison: ${["anthropic:claude-sonnet-5-5", "anthropic:claude-haiku-4-5", "anthropic:claude-opus-5-5"].map((m) => `${m} $${costWith(m).toFixed(4)}`).join(", ")}`,
        `  target first token < 300 ms: ${firstToken < 300 ? "met" : "NOT met"}; a question < $0.02: ${cost < 0.02 ? "met" : "NOT met"}; < $1 a day: ${cost * QUESTIONS_A_DAY < 1 ? "met" : "NOT met"}`,
        "",
      ].join("\n"),
    );
    return { firstTokenMs: firstToken, costUsd: cost };
  } finally {
    await new Promise((done) => (server ? server.close(done) : done(undefined)));
    await anthropic.close();
    db.$client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
