import { type LatestMetricsResponse, latestMetricsQuerySchema } from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { INSTANCE_METRICS, latestSamples, STALE_AFTER_MS } from "../../store/latest-metrics.js";
import { parseQuery } from "./query.js";

/** GET /v1/metrics/latest?metric=a,b: each service instance's latest sample of each metric (default: CPU and memory). */
export function metricsLatest(app: Hono, db: Store, now: () => number): void {
  app.get("/v1/metrics/latest", (c) => {
    const query = parseQuery(latestMetricsQuerySchema, c.req.query());
    const since = now() - STALE_AFTER_MS;
    const names = query.metric ? query.metric.split(",") : INSTANCE_METRICS;
    return c.json<LatestMetricsResponse>({ since, samples: latestSamples(db, names, since) });
  });
}
