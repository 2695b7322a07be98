import {
  type FindingResponse,
  type FindingsResponse,
  findingsQuerySchema,
  type SummaryResponse,
  summaryQuerySchema,
} from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { getFinding, listFindings, summary } from "../../store/finding-queries.js";
import { parseQuery } from "./query.js";

/**
 * GET /v1/findings?all&service&agent&kind&since&limit: findings in the ranking order (open
 * first, most severe first); GET /v1/findings/:id: one, with its evidence; GET
 * /v1/summary?window: the digest of the last `window` milliseconds.
 */
export function findingsRoutes(app: Hono, db: Store, now: () => number): void {
  app.get("/v1/findings", (c) => {
    const query = parseQuery(findingsQuerySchema, c.req.query());
    return c.json<FindingsResponse>({ findings: listFindings(db, { ...query, all: query.all === "true" }) });
  });
  app.get("/v1/findings/:id", (c) => c.json<FindingResponse>({ finding: getFinding(db, c.req.param("id")) }));
  app.get("/v1/summary", (c) => {
    const query = parseQuery(summaryQuerySchema, c.req.query());
    return c.json<SummaryResponse>(summary(db, now(), query.window));
  });
}
