import { eventsQuerySchema } from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { listEvents } from "../../store/queries.js";
import { parseQuery } from "./query.js";

/** GET /v1/events?since&before&agent&kind&limit: a page of events, newest stored first, with the cursor to the next. */
export function eventsList(app: Hono, db: Store): void {
  app.get("/v1/events", (c) => c.json(listEvents(db, parseQuery(eventsQuerySchema, c.req.query()))));
}
