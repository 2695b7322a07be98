import { topologyQuerySchema } from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { topology } from "../../store/queries.js";
import { parseQuery, windowOf } from "./query.js";

/** GET /v1/topology?since&until: the service graph seen within the window (default: the last hour). */
export function topologyGet(app: Hono, db: Store, now: () => number): void {
  app.get("/v1/topology", (c) => {
    return c.json(topology(db, windowOf(parseQuery(topologyQuerySchema, c.req.query()), now())));
  });
}
