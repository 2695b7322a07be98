/**
 * What the live map asks the API for, in one place: the page's fetches and the `<link
 * rel=preload>`s the build writes into index.html (vite.config.ts) must be the same addresses,
 * or the browser asks twice.
 */
import { address } from "./address.js";

/**
 * The fields the map reads (`?fields=`): the dependency lists of `GET /v1/services` and the
 * hours and `via` of `GET /v1/topology`'s edges are most of their bytes, and the map draws none.
 */
export const SERVICE_FIELDS = ["health", "instanceCount", "runningCount", "agents", "versions"] as const;
export const EDGE_FIELDS = ["port", "protocol"] as const;

export const SERVICES = address("/v1/services", { fields: SERVICE_FIELDS.join(",") });
export const topologyOf = (window: { since?: number; until?: number }) =>
  address("/v1/topology", { ...window, fields: EDGE_FIELDS.join(",") });
export const FINDINGS = "/v1/findings";
export const AGENTS = "/v1/agents";

/** The live map's four requests (the last hour's graph). */
export const MAP_REQUESTS = [SERVICES, topologyOf({}), FINDINGS, AGENTS] as const;
