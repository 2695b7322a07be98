import { DiscoveryClient, discoveryLimits } from "@coral-mesh/sdk-proto";
import type { ExitCode, Io } from "./output.js";

export interface DiscoveryCheck {
  url: string;
  ok: boolean;
  service: string;
  version: string;
  apiVersion: string;
  latencyMs: number;
  /** Server clock minus this machine's clock, in ms (positive: the server is ahead). */
  clockSkewMs: number;
  problems: string[];
}

/** Checks that a URL serves Coral discovery, how far away it is, and whether our clock suits it. */
export async function checkDiscovery(url: string, fetcher?: (request: Request) => Promise<Response>): Promise<DiscoveryCheck> {
  const client = new DiscoveryClient(fetcher ? { url, fetch: fetcher } : { url });
  const sent = Date.now();
  const started = performance.now();
  const health = await client.health();
  const latencyMs = performance.now() - started;
  // The server read its clock somewhere during the round trip; the midpoint is the best guess.
  const clockSkewMs = health.time - (sent + latencyMs / 2);
  const problems: string[] = [];
  const limit = discoveryLimits.signatureWindowMs;
  if (Math.abs(clockSkewMs) > limit / 2) {
    problems.push(
      `this machine's clock is ${(Math.abs(clockSkewMs) / 1000).toFixed(1)} s ${clockSkewMs > 0 ? "behind" : "ahead of"} discovery; signed requests are refused beyond ${limit / 1000} s. Sync the clock (NTP).`,
    );
  }
  return {
    url,
    ok: problems.length === 0,
    service: health.service,
    version: health.version,
    apiVersion: health.apiVersion,
    latencyMs,
    clockSkewMs,
    problems,
  };
}

export async function discoveryCheckCommand(url: string, options: { json?: boolean }, io: Io): Promise<ExitCode> {
  const check = await checkDiscovery(url);
  if (options.json) {
    io.out(`${JSON.stringify(check, null, 2)}\n`);
  } else {
    const ahead = check.clockSkewMs >= 0 ? "ahead of" : "behind";
    io.out(
      [
        `Discovery  ${check.url}`,
        `  service  ${check.service} ${check.version} (API ${check.apiVersion})`,
        `  latency  ${check.latencyMs.toFixed(0)} ms`,
        `  clock    discovery is ${(Math.abs(check.clockSkewMs) / 1000).toFixed(1)} s ${ahead} this machine (limit ±${discoveryLimits.signatureWindowMs / 1000} s)`,
        ...check.problems.map((p) => `  problem  ${p}`),
        check.ok ? "  ok" : "  not ok",
        "",
      ].join("\n"),
    );
  }
  return check.ok ? 0 : 1;
}
