/**
 * `coral findings` over 10,000 findings rows: a real store file seeded through drizzle (a month
 * of findings on 1,000 agents × 40 services, a few hundred open, the rest resolved, each with
 * evidence the size a detector writes; 50,000 deploys and restarts beside them), and the API served on loopback, called over HTTP as the
 * CLI calls it. Prints the median and p95 of each call. Target: `coral findings` < 100 ms.
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FindingKind, findingKinds, type Severity } from "@coral-mesh/sdk-proto";
import { serve } from "@hono/node-server";
import { createApiApp } from "../src/api/app.js";
import { loadOrCreateIdentity } from "../src/identity.js";
import { openStore } from "../src/store/db.js";
import { events, findings } from "../src/store/schema.js";

const ROWS = 10_000;
const OPEN = 300;
/** Deploys and restarts over the month, for the summary to find what fixed each finding. */
const EVENTS = 50_000;
const CALLS = 50;
const DAY_MS = 86_400_000;

export interface FindingsBenchOptions {
  out: (line: string) => void;
  rows?: number;
}

const pct = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))] ?? Number.NaN;

export async function findingsBench(options: FindingsBenchOptions): Promise<{ medianMs: number }> {
  const rows = options.rows ?? ROWS;
  const dir = mkdtempSync(join(tmpdir(), "coral-bench-findings-"));
  const db = openStore(join(dir, "coral.db"));
  const now = Date.now();
  try {
    const severities: Severity[] = ["critical", "warning", "warning", "info"];
    // Deterministic, so runs compare: a small linear congruential generator.
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const values = Array.from({ length: rows }, (_, i): typeof findings.$inferInsert => {
      const open = i < OPEN;
      const kind = findingKinds[i % findingKinds.length] as FindingKind;
      const agent = `agent-${String(Math.floor(random() * 1000)).padStart(4, "0")}`;
      const service = `svc-${Math.floor(random() * 40)}`;
      const openedAt = now - Math.floor(random() * 30 * DAY_MS);
      const resolvedAt = open ? null : Math.min(now, openedAt + Math.floor(random() * 3_600_000));
      return {
        id: `fnd_${i.toString(36).padStart(6, "0")}`,
        identity: `${kind}:${agent}:${service}:${i}`,
        kind,
        severity: severities[i % severities.length] as Severity,
        state: open ? "open" : "resolved",
        service,
        agentName: agent,
        rootCause: { service, agent, kind },
        summary: `${service} on ${agent}: ${kind} for the last ${Math.round(random() * 50)} minutes`,
        confidence: Math.round(random() * 100) / 100,
        evidence: {
          events: Array.from({ length: 5 }, (_, k) => ({ id: i * 10 + k, kind: "process.restarted", time: openedAt - k * 60_000, agent })),
          metrics: [
            {
              agent,
              subject: `exe:/srv/${service}`,
              metric: "service.memory.rss_bytes",
              since: openedAt - 3_600_000,
              until: openedAt,
              summary: { first: 1e8, last: 4e8, slopePerHour: 3e8, limit: 1e9 },
            },
          ],
          edges: [{ from: service, to: "postgres" }],
          checks: [],
          notes: ["restarts above 3 in 10 minutes", "exit code 137 each time", "the previous version ran clean"],
        },
        recommendation: { action: "restart", step: `restart ${service} on ${agent}` },
        since: openedAt - 120_000,
        openedAt,
        updatedAt: resolvedAt ?? now - Math.floor(random() * 60_000),
        resolvedAt,
      };
    });
    for (let i = 0; i < values.length; i += 500)
      db.insert(findings)
        .values(values.slice(i, i + 500))
        .run();
    const eventRows = Array.from({ length: EVENTS }, (_, i): typeof events.$inferInsert => {
      const service = `svc-${Math.floor(random() * 40)}`;
      const time = now - Math.floor(random() * 30 * DAY_MS);
      const deploy = i % 10 === 0;
      return {
        agentName: `agent-${String(Math.floor(random() * 1000)).padStart(4, "0")}`,
        kind: deploy ? "service.deployed" : "process.restarted",
        time,
        receivedAt: time,
        subjectKind: "service",
        subjectId: `exe:/srv/${service}`,
        subjectName: service,
        attributes: JSON.stringify(deploy ? { source: "sdk", from: "1.0.0", to: "1.0.1" } : { oldPid: "1", newPid: "2" }),
        source: deploy ? "sdk" : "passive",
      };
    });
    for (let i = 0; i < eventRows.length; i += 1_000)
      db.insert(events)
        .values(eventRows.slice(i, i + 1_000))
        .run();

    const { identity } = await loadOrCreateIdentity(join(dir, "identity"));
    const app = createApiApp({
      db,
      identity,
      discoveryUrl: "https://discovery.example.workers.dev",
      mesh: { address: "100.64.0.1", listenPort: 51820 },
      heartbeatIntervalMs: 10_000,
      discoveryState: () => ({ state: "registered", lastRegistered: now, lastError: null, observedAddress: null }),
      peers: async () => new Map(),
      removePeer: async () => {},
    });
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise<void>((ready) => server.once("listening", () => ready()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const time = async (path: string) => {
        const ms: number[] = [];
        let bytes = 0;
        for (let i = 0; i < CALLS; i++) {
          const started = performance.now();
          const response = await fetch(`${url}${path}`);
          const text = await response.text();
          ms.push(performance.now() - started);
          if (!response.ok) throw new Error(`${path} answered ${response.status}: ${text}`);
          bytes = text.length;
        }
        return { path, median: pct(ms, 50), p95: pct(ms, 95), bytes };
      };
      // `coral findings` asks for up to 1,000, open ones by default.
      const results = [
        await time("/v1/findings?limit=1000"),
        await time("/v1/findings?all=true&limit=1000"),
        await time("/v1/findings?service=svc-7&limit=1000"),
        await time("/v1/findings?kind=oom-kill&all=true&limit=1000"),
        await time("/v1/status"),
        await time("/v1/summary"),
      ];
      options.out(
        `Findings: coral findings over ${rows.toLocaleString("en")} rows (${OPEN} open; ${EVENTS.toLocaleString("en")} events), the API over loopback, ${CALLS} calls each`,
      );
      const width = Math.max(...results.map((r) => r.path.length));
      options.out(`  ${"call".padEnd(width)}  median ms  p95 ms  JSON`);
      for (const r of results) {
        options.out(
          `  ${r.path.padEnd(width)}  ${r.median.toFixed(1).padStart(9)}  ${r.p95.toFixed(1).padStart(6)}  ${(r.bytes / 1e3).toFixed(0)} kB`,
        );
      }
      const medianMs = results[0]?.median ?? Number.NaN;
      options.out(`  target coral findings < 100 ms (median): ${medianMs < 100 ? "met" : "NOT met"} (${medianMs.toFixed(1)} ms)`);
      options.out("");
      return { medianMs };
    } finally {
      await new Promise((done) => server.close(done));
    }
  } finally {
    db.$client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
