import { metricsQuerySchema } from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { serviceMetrics } from "../../store/queries.js";
import { parseQuery, windowOf } from "./query.js";

/** GET /v1/services/:name/metrics?metric&since&until&resolution: the service's series (default: the last hour). */
export function metricsGet(app: Hono, db: Store, now: () => number): void {
  app.get("/v1/services/:name/metrics", (c) => {
    const query = parseQuery(metricsQuerySchema, c.req.query());
    return c.json(
      serviceMetrics(db, c.req.param("name"), {
        ...windowOf(query, now()),
        ...(query.metric ? { metric: query.metric } : {}),
        ...(query.resolution ? { resolution: query.resolution } : {}),
      }),
    );
  });
}
