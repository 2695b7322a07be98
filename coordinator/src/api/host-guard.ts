/**
 * Without a token the API answers every process on the machine, and so it must answer only
 * requests addressed to the machine: a web page can point a name it owns at 127.0.0.1 (DNS
 * rebinding) and then read the API as its own origin, but its requests still carry that name.
 * A request whose host is not a loopback name or address is refused; with a token, the token
 * is the guard and any name may be used.
 */
import { CoralError } from "@coral-mesh/sdk-proto";

/** localhost and its subdomains (RFC 6761: never resolved beyond the machine), 127.0.0.0/8 and ::1 (bare, or bracketed as in a URL). */
const LOOPBACK_HOST = /^(localhost|[a-z0-9-]+(\.[a-z0-9-]+)*\.localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|\[::1\])\.?$/i;

/** Whether a host name or address is this machine's alone: where the API listens, and what a request names. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOST.test(hostname);
}

/** Throws `host_not_allowed` for a request to the token-less API by any name but loopback's. */
export function checkRequestHost(url: string): void {
  const { hostname } = new URL(url);
  if (isLoopbackHost(hostname)) return;
  throw new CoralError(
    "host_not_allowed",
    `This coordinator's API has no token, so it answers only requests addressed to loopback (127.0.0.1 or localhost), not to ${hostname}: open it as http://127.0.0.1:PORT/, or give the coordinator an --api-token to reach it by another name.`,
  );
}

/**
 * Throws `host_not_allowed` for a request that would change or spend something (anything but
 * GET and HEAD) sent by a page of another origin. Browsers name the page's origin on such
 * requests, and a plain form or `fetch` needs no preflight: without this, any web page could make
 * the operator's browser post to the loopback API (create a token, spend the model's quota on
 * `POST /v1/ask`). Clients that are not browsers send no `Origin` and are unaffected.
 */
export function checkRequestOrigin(method: string, origin: string | undefined, url: string, host: string | undefined): void {
  if (method === "GET" || method === "HEAD" || origin === undefined) return;
  let from: string | undefined;
  try {
    from = new URL(origin).host;
  } catch {
    from = undefined; // "null": a sandboxed frame or a file, never the dashboard
  }
  if (from !== undefined && from === (host ?? new URL(url).host)) return;
  throw new CoralError(
    "host_not_allowed",
    `This coordinator's API does not take ${method} requests from pages of other origins (${origin}); only its own dashboard, and clients that are not browsers, may send them.`,
  );
}
