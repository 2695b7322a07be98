/**
 * The findings engine's side on the main thread: starts its worker, hands it what the bus
 * announces, writes the findings it concludes to the store and announces them on the bus
 * (`finding.changed`). Ingest never waits for it: posting to a worker is a copy, and the
 * engine runs on its own thread. A worker that dies is started again, a few seconds later.
 */
import { Worker } from "node:worker_threads";
import type { AnalysisConfig } from "@coral-mesh/sdk-proto";
import type { Bus } from "../store/bus.js";
import type { Store } from "../store/db.js";
import type { FindingChange } from "./engine.js";
import type { FromWorker, ToWorker, WorkerOptions } from "./worker.js";

export interface AnalysisOptions {
  db: Store;
  bus: Bus;
  storePath: string;
  config?: AnalysisConfig;
  evaluateEveryMs?: number;
  log?: (line: string) => void;
}

const RESTART_AFTER_MS = 5_000;

/** The worker's script: the compiled one beside the bundle, or from source through tsx. */
function workerScript(): { script: URL; entry?: string } {
  const here = import.meta.url;
  if (here.endsWith(".ts")) return { script: new URL("./worker-dev.mjs", here), entry: new URL("./worker.ts", here).href };
  return { script: new URL("./analysis-worker.js", here) };
}

export class Analysis {
  private worker: Worker | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly unfollow: Array<() => void> = [];
  private readonly write;
  private ready: Promise<void> = Promise.resolve();

  constructor(private readonly options: AnalysisOptions) {
    const { db } = options;
    const insert = db.$client.prepare(
      `INSERT INTO findings (id, identity, kind, severity, state, service, agent_name, root_cause, summary, confidence, evidence, recommendation, since, opened_at, updated_at, resolved_at)
       VALUES (@id, @identity, @kind, @severity, @state, @service, @agent, @rootCause, @summary, @confidence, @evidence, @recommendation, @since, @openedAt, @updatedAt, @resolvedAt)
       ON CONFLICT DO NOTHING`,
    );
    const update = db.$client.prepare(
      `UPDATE findings SET severity = @severity, state = @state, root_cause = @rootCause, summary = @summary, confidence = @confidence,
         evidence = @evidence, recommendation = @recommendation, since = @since, updated_at = @updatedAt, resolved_at = @resolvedAt
       WHERE id = @id`,
    );
    this.write = db.$client.transaction((changes: readonly FindingChange[]) => {
      for (const { change, identity, finding: f } of changes) {
        const row = {
          id: f.id,
          severity: f.severity,
          state: f.state,
          rootCause: JSON.stringify(f.rootCause),
          summary: f.summary,
          confidence: f.confidence,
          evidence: JSON.stringify(f.evidence),
          recommendation: JSON.stringify(f.recommendation),
          since: f.since,
          updatedAt: f.updatedAt,
          resolvedAt: f.resolvedAt,
        };
        if (change === "opened") insert.run({ ...row, identity, kind: f.kind, service: f.service, agent: f.agent, openedAt: f.openedAt });
        else update.run(row);
      }
    });
  }

  /** Starts the worker and follows the bus; resolves once the worker has warmed up from the store. */
  start(): Promise<void> {
    const { bus } = this.options;
    this.unfollow.push(
      bus.on("batches.stored", (m) =>
        this.post({ type: "batch", agent: m.agent, receivedAt: m.receivedAt, events: m.events, samples: m.metrics }),
      ),
      bus.on("event.recorded", (event) => this.post({ type: "event", event })),
    );
    this.spawn();
    return this.ready;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    for (const off of this.unfollow.splice(0)) off();
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  /** An agent left the mesh: the engine forgets it (and resolves what it had open). */
  agentRemoved(agent: string): void {
    this.post({ type: "agent-removed", agent });
  }

  private post(message: ToWorker): void {
    this.worker?.postMessage(message);
  }

  private spawn(): void {
    const { log = () => {} } = this.options;
    const { script, entry } = workerScript();
    const workerData: WorkerOptions & { entry?: string } = {
      storePath: this.options.storePath,
      config: this.options.config ?? {},
      evaluateEveryMs: this.options.evaluateEveryMs ?? 1_000,
      ...(entry ? { entry } : {}),
    };
    const worker = new Worker(script, { workerData, ...(entry ? { execArgv: [...process.execArgv, "--conditions=coral-source"] } : {}) });
    this.worker = worker;
    this.ready = new Promise((resolve) => {
      const onReady = (message: FromWorker) => {
        if (message.type !== "ready") return;
        worker.off("message", onReady);
        log(`findings engine ready: warmed up from the store in ${message.warmedUpMs} ms, ${message.openFindings} finding(s) open`);
        resolve();
      };
      worker.on("message", onReady);
      worker.once("exit", () => resolve());
    });
    worker.on("message", (message: FromWorker) => {
      if (message.type === "changes") this.apply(message.changes);
      else if (message.type === "failed") log(`findings engine: an evaluation failed: ${message.error}`);
    });
    worker.on("error", (error) => log(`findings engine failed: ${error.stack ?? error.message}`));
    worker.on("exit", (code) => {
      if (this.stopping || this.worker !== worker) return;
      log(`findings engine stopped (exit ${code}); starting it again in ${RESTART_AFTER_MS / 1000} s`);
      this.worker = undefined;
      this.restartTimer = setTimeout(() => this.spawn(), RESTART_AFTER_MS);
      this.restartTimer.unref();
    });
  }

  private apply(changes: readonly FindingChange[]): void {
    const { bus, log = () => {} } = this.options;
    try {
      this.write(changes);
    } catch (error) {
      log(`findings engine: writing ${changes.length} finding change(s) failed: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    for (const { change, finding } of changes) {
      if (change !== "updated") log(`finding ${change}: [${finding.severity}] ${finding.kind} ${finding.summary}`);
      bus.emit("finding.changed", { change, finding });
    }
  }
}
