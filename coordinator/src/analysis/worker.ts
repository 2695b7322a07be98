/**
 * The findings engine's thread: off the one that answers agents. It reads the store on a
 * read-only connection of its own (warm-up, agents, the graph), takes what the bus announces
 * from the main thread, evaluates about once a second, and posts back what changed; the main
 * thread writes the findings table (host.ts).
 */
import { parentPort, workerData } from "node:worker_threads";
import type { AnalysisConfig } from "@coral-mesh/sdk-proto";
import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import type { Store } from "../store/db.js";
import { ReadModel } from "../store/read-model.js";
import { Engine } from "./engine.js";
import type { InputEvent, InputSample } from "./state.js";
import { readAgents, readDependencies, rollupBaselines, warmUp } from "./warmup.js";

export interface WorkerOptions {
  storePath: string;
  config: AnalysisConfig;
  evaluateEveryMs: number;
}

export type ToWorker =
  | { type: "batch"; agent: string; receivedAt: number; events: InputEvent[]; samples: InputSample[] }
  | { type: "event"; event: InputEvent }
  | { type: "agent-removed"; agent: string }
  | { type: "stop" };

export type FromWorker =
  | { type: "ready"; warmedUpMs: number; openFindings: number }
  | { type: "changes"; changes: import("./engine.js").FindingChange[]; evaluatedMs: number }
  | { type: "failed"; error: string };

const AGENTS_EVERY_MS = 2_000;
const GRAPH_EVERY_MS = 10_000;

function run(options: WorkerOptions): void {
  const port = parentPort;
  if (!port) throw new Error("the analysis worker runs in a worker thread");
  const sqlite = new Database(options.storePath, { readonly: true, fileMustExist: true });
  sqlite.pragma("busy_timeout = 5000");
  const db = drizzle(sqlite) as Store;
  const model = new ReadModel(db);
  const engine = new Engine({ config: options.config, baselines: rollupBaselines(db) });
  const started = performance.now();
  const warmedUpTo = warmUp(db, engine, model, Date.now());
  port.postMessage({
    type: "ready",
    warmedUpMs: Math.round(performance.now() - started),
    openFindings: engine.openFindings().length,
  } satisfies FromWorker);

  // Event ids only grow: what the bus brings up to the last id the warm-up read is known already.
  const known = warmedUpTo;
  const fresh = (events: readonly InputEvent[]) => events.filter((e) => e.id > known);
  port.on("message", (message: ToWorker) => {
    switch (message.type) {
      case "batch":
        engine.state.applyBatch(message.agent, message.receivedAt, fresh(message.events), message.samples);
        break;
      case "event":
        if (message.event.id > known) engine.state.applyEvent(message.event);
        break;
      case "agent-removed":
        engine.state.forgetAgent(message.agent);
        break;
      case "stop":
        clearInterval(timer);
        sqlite.close();
        port.close();
        break;
    }
  });

  let agentsAt = 0;
  let graphAt = Date.now();
  const tick = () => {
    const now = Date.now();
    const t0 = performance.now();
    try {
      if (now - agentsAt >= AGENTS_EVERY_MS) {
        for (const a of readAgents(db)) engine.state.applyAgent(a, now);
        agentsAt = now;
      }
      if (now - graphAt >= GRAPH_EVERY_MS) {
        engine.state.applyDependencies(readDependencies(model), now);
        graphAt = now;
      }
      const changes = engine.evaluate(now);
      if (changes.length) port.postMessage({ type: "changes", changes, evaluatedMs: performance.now() - t0 } satisfies FromWorker);
    } catch (error) {
      port.postMessage({
        type: "failed",
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      } satisfies FromWorker);
    }
  };
  const timer = setInterval(tick, options.evaluateEveryMs);
}

run(workerData as WorkerOptions);
