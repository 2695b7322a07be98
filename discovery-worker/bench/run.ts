/**
 * Discovery benchmark: the Worker served by wrangler's dev server (workerd + local D1),
 * driven over 10 keep-alive connections from this process. Prints throughput and
 * p50/p99 latency per route, and D1 rows written per request.
 *
 *   npm run bench -w discovery-worker            (BENCH_REQUESTS=1500 per round by default)
 *
 * The dev server is started as `wrangler dev` starts it (`unstable_startWorker`), with
 * one difference: its DevTools inspector is off. With the inspector attached, every D1
 * query is mirrored to wrangler's Node process and lookups top out near 210/s; without
 * it, near 680/s on this machine (measured side by side while investigating). All load
 * comes from 127.0.0.1, so the bench's copy of wrangler.toml raises the rate limits;
 * everything else is as deployed.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
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
} from "@coral-mesh/sdk-proto";
import { unstable_startWorker } from "wrangler";

const CONNECTIONS = 10;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1500);
const ROUNDS = 3;
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const wranglerBin = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");

interface Result {
  status: number;
  ms: number;
  rowsWritten: number;
  body: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });

function send(base: URL, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Result> {
  const started = performance.now();
  return new Promise((resolveResult, reject) => {
    const req = httpRequest(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method,
        path,
        headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolveResult({
            status: res.statusCode ?? 0,
            ms: performance.now() - started,
            rowsWritten: Number(res.headers["coral-d1-rows-written"] ?? 0),
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Runs `count` requests made by `make(i)` over CONNECTIONS concurrent lanes. */
async function drive(count: number, make: (i: number) => Promise<Result>): Promise<{ results: Result[]; seconds: number }> {
  const results: Result[] = new Array(count);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      for (let i = next++; i < count; i = next++) results[i] = await make(i);
    }),
  );
  return { results, seconds: (performance.now() - started) / 1000 };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

interface Row {
  route: string;
  rps: number[];
  latencies: number[];
  rowsWritten: number;
  requests: number;
  failures: number;
}

function record(rows: Map<string, Row>, route: string, run: { results: Result[]; seconds: number }, okStatus: number[]): void {
  const row = rows.get(route) ?? { route, rps: [], latencies: [], rowsWritten: 0, requests: 0, failures: 0 };
  row.rps.push(run.results.length / run.seconds);
  for (const r of run.results) {
    row.latencies.push(r.ms);
    row.rowsWritten += r.rowsWritten;
    if (!okStatus.includes(r.status)) row.failures++;
  }
  row.requests += run.results.length;
  rows.set(route, row);
}

function benchConfig(): string {
  const dir = join(repoRoot, ".wrangler", "bench");
  mkdirSync(dir, { recursive: true });
  const config = readFileSync(join(repoRoot, "wrangler.toml"), "utf8")
    .replace('main = "discovery-worker/src/index.ts"', `main = "${join(repoRoot, "discovery-worker/src/index.ts")}"`)
    .replace('migrations_dir = "discovery-worker/migrations"', `migrations_dir = "${join(repoRoot, "discovery-worker/migrations")}"`)
    .replace('watch_dir = "sdk-proto/src"', `watch_dir = "${join(repoRoot, "sdk-proto/src")}"`)
    .replace(/simple = \{ limit = \d+, period = 10 \}/g, "simple = { limit = 1000000, period = 10 }")
    .concat('\n[vars]\nCORAL_DEBUG_D1 = "1"\n');
  const path = join(dir, "wrangler.toml");
  writeFileSync(path, config);
  return path;
}

async function main(): Promise<void> {
  process.stdout.write(`Starting the Worker with wrangler's dev server (workerd, local D1)...\n`);
  const config = benchConfig();
  const persist = mkdtempSync(join(tmpdir(), "coral-bench-"));
  execFileSync(process.execPath, [wranglerBin, "d1", "migrations", "apply", "DB", "--local", "--persist-to", persist, "--config", config], {
    stdio: "ignore",
  });
  const worker = await unstable_startWorker({
    config,
    dev: { server: { hostname: "127.0.0.1", port: 0 }, persist, inspector: false, logLevel: "warn" },
  });
  const base = await worker.url;
  const rows = new Map<string, Row>();
  try {
    const WARMUP = 300;
    const meshCount = REQUESTS * ROUNDS + WARMUP;
    process.stdout.write(`Generating ${meshCount} coordinator keys...\n`);
    const meshes: Array<{ keys: SigningKeyPair; meshId: string; body: string; ticket: JoinTicket }> = [];
    for (let i = 0; i < meshCount; i++) {
      const keys = await generateSigningKeyPair();
      const registration: CoordinatorRegistration = {
        v: 1,
        wireguardKey: toBase64(randomBytes(32)),
        listenPort: 51820,
        endpoints: [`192.0.2.${i % 250}:51820`, `198.51.100.${i % 250}:${40000 + (i % 20000)}`],
      };
      // One ticket per mesh: each round sends one join per mesh, within a ticket's pending limit.
      const tokenId = toBase32(randomBytes(10));
      const expiresAt = Date.now() + 86_400_000;
      const ticket = {
        signingKey: toBase64Url(keys.publicKey),
        tokenId,
        expiresAt,
        signature: await signTicket(keys, { tokenId, expiresAt }),
      };
      meshes.push({ keys, meshId: await meshIdFor(keys.publicKey), body: JSON.stringify(registration), ticket });
    }
    const signed = async (keys: SigningKeyPair, method: string, path: string, body = "") => signRequest(keys, { method, path, body });
    const put = async (m: (typeof meshes)[number]) => {
      const path = `/v1/meshes/${m.meshId}/coordinator`;
      return send(base, "PUT", path, await signed(m.keys, "PUT", path, m.body), m.body);
    };

    // Warm-up, not measured: JIT, SQLite page cache, connections, the dev server's first requests,
    // and the signing and D1 write paths (with meshes of their own).
    await drive(500, () => send(base, "GET", "/v1/health", {}));
    const warm = meshes.splice(REQUESTS * ROUNDS);
    await drive(warm.length, (i) => put(warm[i] as (typeof meshes)[number]));
    await drive(warm.length, (i) => send(base, "GET", `/v1/meshes/${(warm[i] as (typeof meshes)[number]).meshId}/coordinator`, {}));

    const joinIds: Array<{ meshId: string; joinId: string; keys: SigningKeyPair }> = [];
    for (let round = 0; round < ROUNDS; round++) {
      process.stdout.write(`Round ${round + 1}/${ROUNDS}: ${REQUESTS} requests per route over ${CONNECTIONS} connections\n`);
      const slice = meshes.slice(round * REQUESTS, (round + 1) * REQUESTS);
      record(rows, "GET /v1/health (baseline)", await drive(REQUESTS, () => send(base, "GET", "/v1/health", {})), [200]);
      record(rows, "PUT coordinator (new, signed)", await drive(REQUESTS, (i) => put(slice[i] as (typeof meshes)[number])), [201]);
      record(rows, "PUT coordinator (unchanged refresh)", await drive(REQUESTS, (i) => put(slice[i] as (typeof meshes)[number])), [200]);
      record(
        rows,
        "GET coordinator (lookup)",
        await drive(REQUESTS, (i) =>
          send(
            base,
            "GET",
            `/v1/meshes/${(meshes[(i * 7919) % ((round + 1) * REQUESTS)] as (typeof meshes)[number]).meshId}/coordinator`,
            {},
          ),
        ),
        [200],
      );
      const joinRun = await drive(REQUESTS, (i) => {
        const m = slice[i % slice.length] as (typeof meshes)[number];
        const body = JSON.stringify({
          v: 1,
          wireguardKey: toBase64(randomBytes(32)),
          sealed: toBase64Url(randomBytes(160)),
          ticket: m.ticket,
        });
        return send(base, "POST", `/v1/meshes/${m.meshId}/joins`, {}, body).then((r) => {
          if (r.status === 201) joinIds.push({ meshId: m.meshId, keys: m.keys, joinId: (JSON.parse(r.body) as { joinId: string }).joinId });
          return r;
        });
      });
      record(rows, "POST joins (agent)", joinRun, [201]);
      record(
        rows,
        "GET joins (coordinator poll, signed)",
        await drive(REQUESTS, async (i) => {
          const m = slice[i % slice.length] as (typeof meshes)[number];
          const path = `/v1/meshes/${m.meshId}/joins`;
          return send(base, "GET", path, await signed(m.keys, "GET", path));
        }),
        [200],
      );
      const pending = joinIds.splice(0);
      record(
        rows,
        "PUT answer (signed)",
        await drive(pending.length, async (i) => {
          const j = pending[i] as (typeof pending)[number];
          const path = `/v1/meshes/${j.meshId}/joins/${j.joinId}/answer`;
          const body = JSON.stringify({ v: 1, sealed: toBase64Url(randomBytes(120)) });
          return send(base, "PUT", path, await signed(j.keys, "PUT", path, body), body);
        }),
        [200],
      );
      record(
        rows,
        "GET answer (agent)",
        await drive(pending.length, (i) => {
          const j = pending[i] as (typeof pending)[number];
          return send(base, "GET", `/v1/meshes/${j.meshId}/joins/${j.joinId}/answer`, {});
        }),
        [200],
      );
    }
  } finally {
    agent.destroy();
    await worker.dispose();
    rmSync(persist, { recursive: true, force: true });
  }

  const baseline = median(rows.get("GET /v1/health (baseline)")?.rps ?? []);
  const lines = [...rows.values()].map((row) => {
    const sorted = [...row.latencies].sort((a, b) => a - b);
    const rps = median(row.rps);
    return {
      route: row.route,
      "req/s (median of 3)": rps.toFixed(0),
      "vs baseline": (rps / baseline).toFixed(2),
      "p50 ms": percentile(sorted, 50).toFixed(1),
      "p99 ms": percentile(sorted, 99).toFixed(1),
      "D1 rows written/req": (row.rowsWritten / row.requests).toFixed(2),
      failures: row.failures,
    };
  });
  process.stdout.write(
    `\nDiscovery Worker on wrangler's dev server (inspector off), ${CONNECTIONS} connections, load generator on the same machine (${ROUNDS} rounds of ${REQUESTS})\n`,
  );
  console.table(lines);

  const get = (route: string) => lines.find((l) => l.route === route);
  const registrations = Number(get("PUT coordinator (new, signed)")?.["req/s (median of 3)"]);
  const lookups = Number(get("GET coordinator (lookup)")?.["req/s (median of 3)"]);
  const worstP99 = Math.max(...lines.map((l) => Number(l["p99 ms"])));
  const targets = [
    [`signed registrations ≥ 200/s`, registrations >= 200, `${registrations}/s`],
    [`lookups ≥ 250/s`, lookups >= 250, `${lookups}/s`],
    [`p99 < 100 ms on every route`, worstP99 < 100, `worst ${worstP99} ms`],
    [`unchanged refresh writes 0 rows`, Number(get("PUT coordinator (unchanged refresh)")?.["D1 rows written/req"]) === 0, ""],
    [`no failed requests`, lines.every((l) => l.failures === 0), ""],
  ] as const;
  for (const [name, met, figure] of targets) process.stdout.write(`${met ? "met   " : "MISSED"}  ${name} ${figure}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
