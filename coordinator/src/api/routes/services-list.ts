import type { ServicesResponse } from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { listServices } from "../../store/queries.js";

/** Dependencies and dependents count when seen within this span. */
export const DEPENDENCY_WINDOW_MS = 86_400_000;

/** GET /v1/services: every service across agents, with instances, dependencies and dependents. */
export function servicesList(app: Hono, db: Store, now: () => number): void {
  app.get("/v1/services", (c) => {
    const at = now();
    return c.json<ServicesResponse>({ services: listServices(db, at - DEPENDENCY_WINDOW_MS, at) });
  });
}
