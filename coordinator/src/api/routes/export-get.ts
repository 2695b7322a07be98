/**
 * GET /v1/export?since: services, topology, findings and events as one JSON document
 * (sdk-proto `exportDocumentSchema`), written as it is read: events and findings a page at a
 * time from the store, so neither side holds a big store's history in memory. A route rather
 * than the CLI composing `/v1/events` and `/v1/findings`: the findings route ranks and caps
 * its answer (no cursor), and one pass here reads events up to one id fixed at the start, so
 * what is stored meanwhile does not shift the pages.
 */
import { type EventView, exportQuerySchema, type Finding, type ServiceSummary } from "@coral-mesh/sdk-proto";
import { sql } from "drizzle-orm";
import type { Hono } from "hono";
import { stream } from "hono/streaming";
import type { Store } from "../../store/db.js";
import { findingsPage } from "../../store/finding-queries.js";
import { listEvents, listServices, topology } from "../../store/queries.js";
import { events } from "../../store/schema.js";
import { parseQuery } from "./query.js";
import { DEPENDENCY_WINDOW_MS } from "./services-list.js";

export const DEFAULT_EXPORT_SPAN_MS = 86_400_000;
const PAGE = 1_000;

export function exportGet(app: Hono, db: Store, meshId: string, now: () => number): void {
  app.get("/v1/export", (c) => {
    const query = parseQuery(exportQuerySchema, c.req.query());
    const at = now();
    const since = query.since ?? at - DEFAULT_EXPORT_SPAN_MS;
    // Read before the first byte goes out, so a bad store answers an error rather than half a document.
    const services: ServiceSummary[] = listServices(db, at - DEPENDENCY_WINDOW_MS, at, { instances: true });
    const graph = topology(db, { since, until: at });
    const lastEvent =
      db
        .select({ id: sql<number | null>`max(${events.id})` })
        .from(events)
        .get()?.id ?? 0;
    c.header("content-type", "application/json; charset=utf-8");
    return stream(
      c,
      async (out) => {
        const head = { format: "coral-export", version: 1, mesh: { id: meshId }, exportedAt: at, window: { from: since, to: at } };
        const headText = JSON.stringify(head);
        await out.write(`${headText.slice(0, -1)},"services":${JSON.stringify(services)},"topology":${JSON.stringify(graph)},"findings":[`);
        let findings = 0;
        let after: Finding | undefined;
        for (;;) {
          const page = findingsPage(db, { since, after, limit: PAGE });
          if (page.length > 0) await out.write(`${findings > 0 ? "," : ""}${page.map((f) => JSON.stringify(f)).join(",")}`);
          findings += page.length;
          after = page.at(-1);
          if (page.length < PAGE) break;
        }
        await out.write('],"events":[');
        let eventCount = 0;
        let before: number | null = lastEvent + 1;
        while (before !== null) {
          const page: { events: EventView[]; next: number | null } = listEvents(db, { since, before, limit: PAGE });
          if (page.events.length > 0) await out.write(`${eventCount > 0 ? "," : ""}${page.events.map((e) => JSON.stringify(e)).join(",")}`);
          eventCount += page.events.length;
          before = page.next;
        }
        const totals = { services: services.length, edges: graph.edges.length, findings, events: eventCount };
        await out.write(`],"totals":${JSON.stringify(totals)}}\n`);
      },
      async (error) => {
        // Headers are out: the document stays without its totals, which tells a reader it was cut short.
        console.error("export failed midway:", error);
      },
    );
  });
}
