import { CoralError, metricsQuerySchema } from "@coral/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { serviceMetrics } from "../../store/queries.js";
import { parseQuery } from "./query.js";

/** GET /v1/services/:name/metrics?metric&since&until&resolution: the service's series (default: the last hour). */
export function metricsGet(app: Hono, db: Store, now: () => number): void {
  app.get("/v1/services/:name/metrics", (c) => {
    const query = parseQuery(metricsQuerySchema, c.req.query());
    const until = query.until ?? now();
    const since = query.since ?? until - 3_600_000;
    if (since > until) throw new CoralError("invalid_query", "since: the window starts after it ends; give a since before until.");
    return c.json(
      serviceMetrics(db, c.req.param("name"), {
        since,
        until,
        ...(query.metric ? { metric: query.metric } : {}),
        ...(query.resolution ? { resolution: query.resolution } : {}),
      }),
    );
  });
}
