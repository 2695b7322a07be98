/**
 * The coordinator's HTTP API, from outside its namespace: it listens on loopback there, so one
 * long-lived relay process runs inside the namespace and answers requests sent on its stdin
 * (one JSON line each) with one JSON line on its stdout. One process for the whole run, not a
 * `node` started per poll: polling every 500 ms would otherwise cost the lab a core's tenth.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { LabCoordinator } from "@coral-mesh/coordinator/testing";
import type { z } from "zod";

/** Each request is answered as it completes, so a slow answer does not hold up the next. */
const RELAY = `
  const { readFileSync } = await import("node:fs");
  const { createInterface } = await import("node:readline");
  const dataDir = process.argv[1];
  const rl = createInterface({ input: process.stdin });
  rl.on("line", async (line) => {
    const { id, path } = JSON.parse(line);
    try {
      const api = JSON.parse(readFileSync(dataDir + "/api.json", "utf8"));
      const response = await fetch(api.url + path, { headers: api.token ? { authorization: "Bearer " + api.token } : {} });
      const text = await response.text();
      let body;
      try { body = JSON.parse(text); } catch { body = text; }
      process.stdout.write(JSON.stringify({ id, status: response.status, body }) + "\\n");
    } catch (error) {
      process.stdout.write(JSON.stringify({ id, status: 0, body: String(error && error.message || error) }) + "\\n");
    }
  });
`;
export interface ApiAnswer {
  status: number;
  body: unknown;
}

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly path: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`GET ${path}: ${status === 0 ? `no answer (${String(body)})` : `HTTP ${status} ${JSON.stringify(body).slice(0, 300)}`}`);
  }
}

export class CoordinatorApi {
  private child: ChildProcess | undefined;
  private next = 1;
  private readonly waiting = new Map<number, (answer: ApiAnswer) => void>();

  start(coordinator: LabCoordinator): void {
    const child = spawn(
      "ip",
      ["netns", "exec", coordinator.options.ns, process.execPath, "--input-type=module", "-e", RELAY, coordinator.options.dataDir],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const answer = JSON.parse(line) as ApiAnswer & { id: number };
      this.waiting.get(answer.id)?.(answer);
      this.waiting.delete(answer.id);
    });
    child.once("exit", () => {
      for (const done of this.waiting.values()) done({ status: 0, body: "the API relay exited" });
      this.waiting.clear();
    });
    this.child = child;
  }

  /** GET `path` (with its query string); the raw status and body. */
  request(path: string, timeoutMs = 15_000): Promise<ApiAnswer> {
    const child = this.child;
    if (!child?.stdin || child.exitCode !== null) return Promise.resolve({ status: 0, body: "the API relay is not running" });
    const id = this.next++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({ status: 0, body: `no answer within ${timeoutMs / 1000} s` });
      }, timeoutMs);
      this.waiting.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      child.stdin?.write(`${JSON.stringify({ id, path })}\n`);
    });
  }

  /** GET `path`, checked against `schema`; throws ApiError on anything but a 200 that matches. */
  async get<T>(path: string, schema: z.ZodType<T>): Promise<T> {
    const answer = await this.request(path);
    if (answer.status !== 200) throw new ApiError(path, answer.status, answer.body);
    const parsed = schema.safeParse(answer.body);
    if (!parsed.success) throw new ApiError(path, answer.status, `not the contract: ${parsed.error.issues[0]?.message ?? "?"}`);
    return parsed.data;
  }

  stop(): void {
    this.child?.kill("SIGKILL");
    this.child = undefined;
  }
}
