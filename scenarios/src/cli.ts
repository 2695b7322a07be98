/**
 * `npm run scenarios [-- --only NAME[,NAME]] [--list] [--out FILE] [--warmup S] [--budget MIN]`: starts the lab, runs the
 * scenarios one after another on it, prints the table and the totals, writes the results as
 * JSON, and exits 1 when a target is missed or a scenario errored (2 on a usage error).
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { type ScenarioResult, scenarioResultSchema, totals } from "./judge.js";
import { ScenarioLab, sleep } from "./lab.js";
import { blankResult, contractIssues, runScenario } from "./run.js";
import { DEFAULT_TIMEOUT_MS, isControl } from "./scenario.js";
import { SCENARIOS } from "./scenarios/index.js";
import { formatTable, formatTotals, HEADER, resultRows } from "./table.js";

/** What the whole run may take (`--budget MINUTES`): CI allows the suite 30 minutes. */
const DEFAULT_BUDGET_MINUTES = 29;

/** A pause between scenarios, so that what stopping one caused reaches the store before the next starts. */
const BETWEEN_MS = 3_000;

function usage(message: string): never {
  process.stderr.write(
    `scenarios: ${message}\nusage: npm run scenarios [-- --only NAME[,NAME...]] [--list] [--out FILE] [--warmup SECONDS] [--budget MINUTES]\n`,
  );
  process.exit(2);
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse();
  } catch (error) {
    usage((error as Error).message);
  }
  if (args.values.list) {
    for (const s of SCENARIOS)
      process.stdout.write(`${s.name.padEnd(22)} ${isControl(s) ? "control" : s.via.padEnd(7)}  ${s.description}\n`);
    return 0;
  }
  const only = args.values.only?.split(",").filter(Boolean);
  const unknown = only?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
  if (unknown.length > 0) usage(`no scenario named ${unknown.join(", ")} (--list shows them)`);
  const warmup = args.values.warmup === undefined ? undefined : Number(args.values.warmup);
  if (warmup !== undefined && !(Number.isFinite(warmup) && warmup >= 0)) usage("--warmup is a number of seconds");
  // --warmup shortens every warm-up, for trying the lab itself: baselines need the full ones.
  const chosen = (only ? SCENARIOS.filter((s) => only.includes(s.name)) : SCENARIOS).map((s) =>
    warmup === undefined ? s : { ...s, warmupMs: Math.min(s.warmupMs, warmup * 1000) },
  );
  const out = resolve(args.values.out ?? "scenarios-result.json");
  const budgetMs = Number(args.values.budget ?? DEFAULT_BUDGET_MINUTES) * 60_000;
  if (!(budgetMs > 0)) usage("--budget is a number of minutes");

  const missing = ScenarioLab.missing();
  if (missing) {
    process.stderr.write(`scenarios: the lab ${missing}; run it as root on Linux with WireGuard, nftables and cgroup v1 memory.\n`);
    return 1;
  }
  const began = Date.now();
  const log = (line: string) => process.stdout.write(`[${clock(began)}] ${line}\n`);
  // Ctrl-C (or a CI timeout's SIGTERM) at any moment: the lab is taken down, whatever it had
  // started, and the run ends with 130. While the lab is still starting, once it has started.
  let lab: ScenarioLab | undefined;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping every process and removing the lab`);
    if (lab) void lab.destroy().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  log(`starting the lab (a coordinator and 3 agent hosts) for ${chosen.length} scenario(s)`);
  lab = await ScenarioLab.start(log);
  if (interrupted) {
    await lab.destroy();
    return 130;
  }

  const results: ScenarioResult[] = [];
  const retired = new Set<string>();
  const source = { from: "api" as "api" | "store" };
  try {
    for (const scenario of chosen) {
      if (interrupted) break;
      // CI gives the suite 30 minutes: a scenario that could not finish within them is not started.
      const needs = scenario.warmupMs + (isControl(scenario) ? scenario.windowMs : (scenario.timeoutMs ?? DEFAULT_TIMEOUT_MS)) + 15_000;
      if (Date.now() + needs > began + budgetMs) {
        log(
          `  ${scenario.name}: not run: it could take ${Math.round(needs / 1000)} s, past the suite's ${budgetMs / 60_000}-minute budget`,
        );
        results.push(blankResult(scenario, Date.now(), `not run: the suite's ${budgetMs / 60_000}-minute budget ran out`));
        continue;
      }
      const result = await runScenario(lab, scenario, { log, retired, source });
      results.push(scenarioResultSchema.parse(result));
      await sleep(BETWEEN_MS);
    }
  } finally {
    await lab.destroy();
  }

  const t = totals(results);
  process.stdout.write(`\n${formatTable(HEADER, resultRows(results))}\n\n${formatTotals(t)}\n`);
  if (contractIssues.size > 0) process.stdout.write(`${contractIssues.size} finding(s) broke the Finding contract (listed in the JSON)\n`);
  if (source.from === "store")
    process.stdout.write("findings were read from the coordinator's findings table: its API has no GET /v1/findings yet\n");
  writeFileSync(
    out,
    `${JSON.stringify({ startedAt: began, endedAt: Date.now(), findingsFrom: source.from, contractIssues: [...contractIssues.values()], totals: t, scenarios: results }, null, 2)}\n`,
  );
  process.stdout.write(`results: ${out} (${clock(began)} in all)\n`);
  return t.missed.length === 0 ? 0 : 1;
}

function parse() {
  return parseArgs({
    options: {
      only: { type: "string" },
      list: { type: "boolean" },
      out: { type: "string" },
      warmup: { type: "string" },
      budget: { type: "string" },
    },
    allowPositionals: false,
  });
}

const clock = (since: number) => {
  const s = Math.round((Date.now() - since) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
};

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`scenarios: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
