/**
 * A client for the discovery API, used by the coordinator and the agent.
 * Discovery is untrusted: every answer is parsed against its schema, and a
 * coordinator record is only returned after its signature verifies.
 */
import type { z } from "zod";
import { fromBase64Url, toBase64Url } from "../encoding.js";
import { CoralError, type ErrorCode, isErrorCode } from "../errors/index.js";
import { duplicateJsonKey } from "../json.js";
import { weakSigningKeyReason } from "./ed25519.js";
import { discoveryLimits, discoveryTtls } from "./limits.js";
import {
  type CoordinatorRecord,
  type CoordinatorRegistration,
  coordinatorRecordSchema,
  coordinatorRegistrationSchema,
  type HealthResponse,
  healthResponseSchema,
  type JoinAnswerRecord,
  type JoinCreated,
  type JoinList,
  joinAnswerRecordSchema,
  joinCreatedSchema,
  joinListSchema,
} from "./schemas.js";
import { canonicalRequest, meshIdFor, type SigningKeyPair, signRequest, verifyCanonical } from "./signing.js";
import type { JoinTicket } from "./ticket.js";

export type FetchLike = (request: Request) => Promise<Response>;

/** One request as the discovery client makes it: a small text body, answered whole. */
export interface HttpExchange {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  /** For the whole exchange, the body of the answer included. */
  timeoutMs: number;
}

/** The answer to an `HttpExchange`. */
export interface HttpAnswer {
  status: number;
  /** A header by its name (any case), or null. */
  header(name: string): string | null;
  body: string;
}

/**
 * How the client sends its requests. The default goes through `fetch`. A Node.js process that
 * wants to stay small passes one built on `node:http` instead: Node's `fetch` (undici) costs
 * about 20 MB of memory for as long as the process lives, and twice that while it compiles.
 */
export type HttpTransport = (exchange: HttpExchange) => Promise<HttpAnswer>;

/** A transport through `fetch`, or through a handler that takes a `Request` (the Worker's own, in tests). */
export function fetchTransport(fetcher: FetchLike = (request) => fetch(request)): HttpTransport {
  return async ({ method, url, headers, body, timeoutMs }) => {
    const response = await fetcher(
      new Request(url, { method, headers, signal: AbortSignal.timeout(timeoutMs), ...(body !== undefined ? { body } : {}) }),
    );
    return { status: response.status, header: (name) => response.headers.get(name), body: await response.text() };
  };
}

export interface DiscoveryClientOptions {
  /** Base URL of the Worker, e.g. `https://coral-discovery.example.workers.dev`. */
  url: string;
  /** How requests are sent; defaults to `fetchTransport(fetch)` (see `HttpTransport`). */
  transport?: HttpTransport;
  /** A `fetch` to send requests through, when no `transport` is given; tests pass the Worker's handler directly. */
  fetch?: FetchLike;
  /** Per-request timeout in ms (default 10 s). */
  timeoutMs?: number;
}

/** An error from discovery, with its stable code and HTTP status. */
export class DiscoveryError extends CoralError {
  readonly httpStatus: number;
  readonly retryAfterSeconds: number | undefined;
  constructor(code: ErrorCode, message: string, httpStatus: number, retryAfterSeconds?: number) {
    super(code, message);
    this.httpStatus = httpStatus;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class DiscoveryClient {
  private readonly base: string;
  private readonly transport: HttpTransport;
  private readonly timeoutMs: number;

  constructor(options: DiscoveryClientOptions) {
    this.base = options.url.replace(/\/+$/, "");
    this.transport = options.transport ?? fetchTransport(options.fetch);
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  health(): Promise<HealthResponse> {
    return this.call("GET", "/v1/health", healthResponseSchema);
  }

  /** Registers or refreshes the coordinator record of the mesh `keys` own. */
  async register(keys: SigningKeyPair, registration: CoordinatorRegistration): Promise<CoordinatorRecord> {
    const meshId = await meshIdFor(keys.publicKey);
    return this.call("PUT", `/v1/meshes/${meshId}/coordinator`, coordinatorRecordSchema, {
      body: JSON.stringify(registration),
      sign: keys,
    });
  }

  /**
   * Looks a coordinator record up and verifies it against the pinned signing key
   * (from an invite). A record that does not verify is refused, whatever discovery says.
   */
  async lookup(meshId: string, pinnedSigningKey: Uint8Array): Promise<CoordinatorRecord> {
    const weak = weakSigningKeyReason(pinnedSigningKey);
    if (weak) throw new CoralError("signing_key_weak", `The invite's signing key is refused: ${weak}. Create a new invite.`);
    if ((await meshIdFor(pinnedSigningKey)) !== meshId) {
      throw new CoralError("mesh_key_mismatch", "The pinned signing key does not belong to this mesh id; the invite is damaged.");
    }
    const record = await this.call("GET", `/v1/meshes/${meshId}/coordinator`, coordinatorRecordSchema);
    return verifyRecord(record, pinnedSigningKey);
  }

  /** Queues a join request; `ticket` is the invite's (see `inviteTicket`). */
  async createJoin(meshId: string, wireguardKey: string, sealed: Uint8Array, ticket: JoinTicket): Promise<JoinCreated> {
    return this.call("POST", `/v1/meshes/${meshId}/joins`, joinCreatedSchema, {
      body: JSON.stringify({ v: 1, wireguardKey, sealed: toBase64Url(sealed), ticket }),
    });
  }

  async listJoins(keys: SigningKeyPair, after?: string): Promise<JoinList> {
    const meshId = await meshIdFor(keys.publicKey);
    const query = after === undefined ? "" : `?after=${encodeURIComponent(after)}`;
    return this.call("GET", `/v1/meshes/${meshId}/joins${query}`, joinListSchema, { sign: keys });
  }

  async answerJoin(keys: SigningKeyPair, joinId: string, sealed: Uint8Array): Promise<JoinAnswerRecord> {
    const meshId = await meshIdFor(keys.publicKey);
    return this.call("PUT", `/v1/meshes/${meshId}/joins/${joinId}/answer`, joinAnswerRecordSchema, {
      body: JSON.stringify({ v: 1, sealed: toBase64Url(sealed) }),
      sign: keys,
    });
  }

  /** The sealed answer, or null while the coordinator has not answered. */
  async getAnswer(meshId: string, joinId: string): Promise<JoinAnswerRecord | null> {
    try {
      return await this.call("GET", `/v1/meshes/${meshId}/joins/${joinId}/answer`, joinAnswerRecordSchema);
    } catch (error) {
      if (error instanceof DiscoveryError && error.code === "answer_pending") return null;
      throw error;
    }
  }

  private async call<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S,
    options: { body?: string; sign?: SigningKeyPair } = {},
  ): Promise<z.infer<S>> {
    const headers: Record<string, string> = {};
    if (options.body !== undefined) headers["content-type"] = "application/json";
    if (options.sign) Object.assign(headers, await signRequest(options.sign, { method, path, body: options.body ?? "" }));
    let response: HttpAnswer;
    try {
      response = await this.transport({
        method,
        url: this.base + path,
        headers,
        timeoutMs: this.timeoutMs,
        ...(options.body !== undefined ? { body: options.body } : {}),
      });
    } catch (cause) {
      throw new CoralError(
        "discovery_unreachable",
        `Cannot reach discovery at ${this.base}: ${describe(cause)}. Check the URL and the network.`,
        { cause },
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(response.body);
    } catch {
      throw new CoralError(
        "discovery_bad_response",
        `Discovery at ${this.base} answered ${response.status} with a body that is not JSON; is the URL a Coral discovery Worker?`,
      );
    }
    if (response.status < 200 || response.status > 299) {
      const body = json as { code?: unknown; message?: unknown };
      const retryAfter = Number(response.header("retry-after") ?? Number.NaN);
      if (isErrorCode(body.code) && typeof body.message === "string") {
        throw new DiscoveryError(body.code, body.message, response.status, Number.isFinite(retryAfter) ? retryAfter : undefined);
      }
      throw new CoralError("discovery_bad_response", `Discovery at ${this.base} answered ${response.status} without a Coral error body.`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new CoralError(
        "discovery_bad_response",
        `Discovery at ${this.base} answered ${method} ${path} with a body of the wrong shape; is it the same API version?`,
      );
    }
    return parsed.data;
  }
}

/**
 * Checks that a record is what the pinned key signed for this mesh, recently, and
 * returns it with the registration taken from the signed body itself: nothing
 * discovery adds outside the signature is trusted, except as a hint.
 */
export async function verifyRecord(record: CoordinatorRecord, pinnedSigningKey: Uint8Array, now = Date.now()): Promise<CoordinatorRecord> {
  const refuse = (why: string) => new CoralError("record_unverified", `The coordinator record from discovery ${why}; it was not used.`);
  if (record.signingKey !== toBase64Url(pinnedSigningKey)) throw refuse("is signed by another key than the invite's");
  if (record.signed.path !== `/v1/meshes/${record.meshId}/coordinator`) throw refuse("was signed for another path");
  const signature = fromBase64Url(record.signed.signature);
  const canonical = await canonicalRequest(record.signed, record.signed.timestamp, record.signed.nonce);
  if (!signature || !(await verifyCanonical(pinnedSigningKey, canonical, signature))) throw refuse("has a signature that does not verify");
  const maxAge = discoveryTtls.coordinatorRecordSeconds * 1000 + discoveryLimits.signatureWindowMs;
  if (now - record.signed.timestamp > maxAge)
    throw refuse(`was signed ${Math.round((now - record.signed.timestamp) / 60_000)} min ago, longer than a record lives`);
  let registration: unknown;
  try {
    registration = JSON.parse(record.signed.body);
  } catch {
    throw refuse("carries a signed body that is not JSON");
  }
  if (duplicateJsonKey(record.signed.body) !== undefined) throw refuse("carries a signed body with a key twice");
  const parsed = coordinatorRegistrationSchema.safeParse(registration);
  if (!parsed.success) throw refuse("carries a signed body that is not a registration");
  return { ...record, registration: parsed.data };
}

function describe(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  if (cause.name === "TimeoutError") return "timed out";
  // Node's fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND, ...) is in its
  // cause. node:http's errors carry it themselves, and their message already names it.
  const inner = cause.cause as { code?: unknown; message?: unknown } | undefined;
  const code = typeof inner?.code === "string" ? inner.code : undefined;
  return code ? `${cause.message} (${code})` : cause.message;
}
