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
