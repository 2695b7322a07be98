import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import {
  type CoordinatorRegistration,
  generateSigningKeyPair,
  type JoinTicket,
  meshIdFor,
  randomBytes,
  type SigningKeyPair,
  signRequest,
  signTicket,
  toBase32,
  toBase64,
  toBase64Url,
  toHex,
} from "@coral-mesh/sdk-proto";
import worker from "../src/index.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123";

export interface TestMesh {
  keys: SigningKeyPair;
  meshId: string;
}

export async function newMesh(): Promise<TestMesh> {
  const keys = await generateSigningKeyPair();
  return { keys, meshId: await meshIdFor(keys.publicKey) };
}

/** A fresh client address per call, so tests never share a rate-limit bucket by accident. */
export function freshAddress(): string {
  return `2001:db8::${toHex(randomBytes(2))}:${toHex(randomBytes(2))}`;
}

export function wireguardKey(): string {
  return toBase64(randomBytes(32));
}

export function sealed(bytes = 96): string {
  return toBase64Url(randomBytes(bytes));
}

export function registration(overrides: Partial<CoordinatorRegistration> = {}): CoordinatorRegistration {
  return { v: 1, wireguardKey: wireguardKey(), listenPort: 51820, endpoints: ["192.0.2.10:51820", "[2001:db8::10]:51820"], ...overrides };
}

export interface SendOptions {
  /** JSON-serialised unless already a string. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Signs the request with these keys. */
  sign?: SigningKeyPair;
  timestamp?: number;
  nonce?: string;
  address?: string;
}

export interface Sent {
  response: Response;
  /** The exact request, for replaying. */
  request: Request;
  json: () => Promise<Record<string, unknown>>;
}

export async function send(method: string, path: string, options: SendOptions = {}): Promise<Sent> {
  const body = options.body === undefined ? undefined : typeof options.body === "string" ? options.body : JSON.stringify(options.body);
  const headers: Record<string, string> = {
    "cf-connecting-ip": options.address ?? freshAddress(),
    ...(body !== undefined ? { "content-type": "application/json" } : {}),
  };
  if (options.sign) {
    const signOptions: { timestamp?: number; nonce?: string } = {};
    if (options.timestamp !== undefined) signOptions.timestamp = options.timestamp;
    if (options.nonce !== undefined) signOptions.nonce = options.nonce;
    Object.assign(headers, await signRequest(options.sign, { method, path, body: body ?? "" }, signOptions));
  }
  Object.assign(headers, options.headers);
  const request = new Request(`https://discovery.test${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  return dispatch(request);
}

export async function dispatch(request: Request): Promise<Sent> {
  // The Worker's own fetch handler with the real bindings, called in-process: going through
  // `exports.default.fetch` works too (see health.test.ts) but slows down with every request made.
  const ctx = createExecutionContext();
  const streamed = await worker.fetch(request.clone() as Request<unknown, IncomingRequestCfProperties>, env, ctx);
  const text = await streamed.text();
  await waitOnExecutionContext(ctx);
  const response = new Response(text, { status: streamed.status, headers: streamed.headers });
  return { response, request, json: async () => JSON.parse(text) as Record<string, unknown> };
}

export async function register(mesh: TestMesh, body: CoordinatorRegistration = registration(), options: SendOptions = {}): Promise<Sent> {
  return send("PUT", `/v1/meshes/${mesh.meshId}/coordinator`, { body, sign: mesh.keys, ...options });
}

/** A join ticket the mesh's coordinator signed, for a fresh token id unless one is given. */
export async function ticketFor(mesh: TestMesh, options: { tokenId?: string; expiresAt?: number } = {}): Promise<JoinTicket> {
  const tokenId = options.tokenId ?? toBase32(randomBytes(10));
  const expiresAt = options.expiresAt ?? Date.now() + 3_600_000;
  return {
    signingKey: toBase64Url(mesh.keys.publicKey),
    tokenId,
    expiresAt,
    signature: await signTicket(mesh.keys, { tokenId, expiresAt }),
  };
}

/** A join request body as an agent sends it, with a ticket of its own unless one is given. */
export async function joinBody(mesh: TestMesh, ticket?: JoinTicket): Promise<Record<string, unknown>> {
  return { v: 1, wireguardKey: wireguardKey(), sealed: sealed(), ticket: ticket ?? (await ticketFor(mesh)) };
}

export async function createJoin(mesh: TestMesh, options: SendOptions = {}): Promise<string> {
  const sent = await send("POST", `/v1/meshes/${mesh.meshId}/joins`, { body: await joinBody(mesh), ...options });
  if (sent.response.status !== 201) throw new Error(`join failed: ${sent.response.status} ${await sent.response.text()}`);
  return (await sent.json()).joinId as string;
}

export function rowsWritten(sent: Sent): number {
  return Number(sent.response.headers.get("coral-d1-rows-written"));
}

/** Everything stored about one mesh, to prove a refused request changed nothing. */
export async function snapshot(meshId: string): Promise<string> {
  const mesh = await env.DB.prepare("SELECT * FROM meshes WHERE mesh_id = ?").bind(meshId).all();
  const joins = await env.DB.prepare("SELECT * FROM joins WHERE mesh_id = ? ORDER BY seq").bind(meshId).all();
  return JSON.stringify({ mesh: mesh.results, joins: joins.results });
}

export async function expectError(sent: Sent, status: number, code: string): Promise<Record<string, unknown>> {
  const body = await sent.json();
  if (sent.response.status !== status || body.code !== code) {
    throw new Error(`expected ${status} ${code}, got ${sent.response.status} ${JSON.stringify(body)}`);
  }
  if (typeof body.message !== "string" || typeof body.requestId !== "string" || body.requestId.length === 0) {
    throw new Error(`error body lacks message or requestId: ${JSON.stringify(body)}`);
  }
  return body;
}

/** Adds pending join requests straight to D1, faster than the API and outside its rate limits. */
export async function insertPendingJoins(meshId: string, count: number): Promise<void> {
  const now = Date.now();
  const insert = env.DB.prepare(
    "INSERT INTO joins (join_id, mesh_id, wireguard_key, sealed, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
  );
  await env.DB.batch(
    Array.from({ length: count }, () => insert.bind(toBase64Url(randomBytes(16)), meshId, wireguardKey(), sealed(), now, now + 60_000)),
  );
}
