/**
 * The coordinator's API as the page reads it: same origin, so the dashboard's cookie (or
 * loopback) authorizes it. Types come from @coral-mesh/sdk-proto, imported as types only, so
 * none of its Node code reaches the bundle.
 */
import type { ErrorBody } from "@coral-mesh/sdk-proto";
import { address, type Query } from "./address.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const request = (url: string) => fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });

/** Answers asked for before the first render, each taken once by `api`. */
const prefetched = new Map<string, Promise<Response>>();

/**
 * Asks for what the first page shows before it renders: its effects, which would ask, run only
 * after the first paint, and the fetches need not wait for that.
 */
export function prefetch(urls: readonly string[]): void {
  for (const url of urls) prefetched.set(url, request(url));
}

export async function api<T>(path: string, query: Query = {}): Promise<T> {
  const url = address(path, query);
  const early = prefetched.get(url);
  prefetched.delete(url);
  const response = await (early ?? request(url));
  if (!response.ok) {
    const body = (await response.json().catch(() => null)) as Partial<ErrorBody> | null;
    throw new ApiError(response.status, body?.code ?? "http_error", body?.message ?? `${response.status} ${response.statusText}`);
  }
  return (await response.json()) as T;
}
