import { type ServiceResponse, type ServiceSummary, type ServicesResponse, servicesQuerySchema } from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import type { Store } from "../../store/db.js";
import { getService, listServices } from "../../store/queries.js";
import { parseQuery, pick } from "./query.js";

/** Dependencies and dependents count when seen within this span. */
export const DEPENDENCY_WINDOW_MS = 86_400_000;

/**
 * GET /v1/services[?instances=true][&fields=a,b]: every service across agents, summarised (with
 * its instances on request; with only the fields named, on request); GET /v1/services/:name: one
 * service with its instances.
 */
export function servicesList(app: Hono, db: Store, now: () => number): void {
  app.get("/v1/services", (c) => {
    const query = parseQuery(servicesQuerySchema, c.req.query());
    const at = now();
    const services = listServices(db, at - DEPENDENCY_WINDOW_MS, at, { instances: query.instances === "true" });
    const { fields } = query;
    if (!fields) return c.json<ServicesResponse>({ services });
    const keep = query.instances === "true" ? [...fields, "instances" as const] : fields;
    return c.json<{ services: Array<Partial<ServiceSummary>> }>({ services: services.map((s) => pick(s, keep)) });
  });
  app.get("/v1/services/:name", (c) => {
    const at = now();
    return c.json<ServiceResponse>({ service: getService(db, c.req.param("name"), at - DEPENDENCY_WINDOW_MS, at) });
  });
}
