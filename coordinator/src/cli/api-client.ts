/**
 * How CLI commands reach the coordinator: `--api URL` when given, otherwise the address
 * the coordinator wrote to `api.json` in its data directory. Errors the API answers come
 * back as CoralErrors with the API's code and message.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { CoralError, type ErrorCode, isErrorCode } from "@coral-mesh/sdk-proto";
import { readApiFile } from "../data-dir.js";

export interface ApiTarget {
  dataDir?: string;
  api?: string;
  apiToken?: string;
}

export function defaultDataDir(): string {
  return process.env.CORAL_DATA_DIR || join(homedir(), ".coral");
}

export class ApiClient {
  private constructor(
    readonly url: string,
    private readonly token: string | undefined,
  ) {}

  static locate(target: ApiTarget): ApiClient {
    const token = target.apiToken ?? process.env.CORAL_API_TOKEN;
    if (target.api) return new ApiClient(target.api.replace(/\/+$/, ""), token);
    const dataDir = target.dataDir ?? defaultDataDir();
    const file = readApiFile(dataDir);
    if (!file) {
      throw new CoralError(
        "coordinator_unreachable",
        `No coordinator is running with data directory ${dataDir}: start one with \`coral coordinator start\`, or pass --data-dir DIR or --api URL.`,
      );
    }
    return new ApiClient(file.url, token ?? file.token);
  }

  /** The headers every request carries: the token, when there is one. */
  authHeaders(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  async request<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    const response = await this.send(method, path, body, AbortSignal.timeout(15_000));
    return (await this.answer(response)) as T;
  }

  /**
   * A GET whose body the caller reads as it arrives (`coral export`): the 15 s limit is on
   * the answer starting, not on the whole body. An error answer becomes a CoralError.
   */
  async open(path: string): Promise<Response> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error("no answer within 15 s")), 15_000);
    try {
      const response = await this.send("GET", path, undefined, abort.signal);
      if (!response.ok) await this.answer(response);
      return response;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A POST whose answer streams (`coral ask`): as `open`, the 15 s limit is on the answer
   * starting; `signal` ends it early. An error answer becomes a CoralError.
   */
  async post(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error("no answer within 15 s")), 15_000);
    const onAbort = () => abort.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const response = await this.send("POST", path, body, abort.signal);
      if (!response.ok) await this.answer(response);
      return response;
    } finally {
      clearTimeout(timer);
    }
  }

  private async send(
    method: "GET" | "POST" | "DELETE",
    path: string,
    body: unknown,
    signal: AbortSignal,
    retried = false,
  ): Promise<Response> {
    try {
      return await fetch(`${this.url}${path}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...this.authHeaders(),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal,
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error instanceof Error ? error.message : String(error));
      // A kept-alive connection the server closed as the request went out: a GET is safe to send once more, on a new one.
      if (cause === "ECONNRESET" && method === "GET" && !retried) return this.send(method, path, body, signal, true);
      throw new CoralError(
        "coordinator_unreachable",
        `The coordinator's API at ${this.url} does not answer (${cause}); is \`coral coordinator start\` still running?`,
      );
    }
  }

  private async answer(response: Response): Promise<unknown> {
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CoralError("coordinator_unreachable", `${this.url} answered ${response.status} with something that is not Coral's API.`);
    }
    if (!response.ok) {
      const error = json as { code?: string; message?: string };
      const code: ErrorCode = isErrorCode(error.code) ? error.code : "internal_error";
      throw new CoralError(code, error.message ?? `The API answered ${response.status}.`);
    }
    return json;
  }
}
