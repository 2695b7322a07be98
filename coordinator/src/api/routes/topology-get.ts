import { type TopologyResponse, topologyQuerySchema } from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { topology } from "../../store/queries.js";
import { parseQuery, pick, windowOf } from "./query.js";

/**
 * GET /v1/topology?since&until[&fields=a,b]: the service graph seen within the window (default:
 * the last hour); with `fields`, each edge has only the fields named (and `from`, `to`).
 */
export function topologyGet(app: Hono, db: Store, now: () => number): void {
  app.get("/v1/topology", (c) => {
    const query = parseQuery(topologyQuerySchema, c.req.query());
    const graph = topology(db, windowOf(query, now()));
    const { fields } = query;
    if (!fields) return c.json<TopologyResponse>(graph);
    return c.json({ ...graph, edges: graph.edges.map((e) => pick(e, fields)) });
  });
}
