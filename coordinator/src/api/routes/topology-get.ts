import { CoralError, topologyQuerySchema } from "@coral/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { topology } from "../../store/queries.js";
import { parseQuery } from "./query.js";

/** GET /v1/topology?since&until: the service graph seen within the window (default: the last hour). */
export function topologyGet(app: Hono, db: Store, now: () => number): void {
  app.get("/v1/topology", (c) => {
    const query = parseQuery(topologyQuerySchema, c.req.query());
    const until = query.until ?? now();
    const since = query.since ?? until - 3_600_000;
    if (since > until) throw new CoralError("invalid_query", "since: the window starts after it ends; give a since before until.");
    return c.json(topology(db, { since, until }));
  });
}
