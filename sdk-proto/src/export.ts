/**
 * `coral export` (GET /v1/export): the model of the application as one JSON document, for
 * archives, diffs and other tools. Its parts are the shapes the API answers elsewhere
 * (model.ts, findings.ts), so a reader of one reads the other.
 *
 * Compatibility: fields are only ever added; `version` moves only if a field changes meaning.
 */
import * as z from "zod";
import { findingSchema } from "./findings.js";
import { eventViewSchema, serviceSummarySchema, topologyResponseSchema } from "./model.js";

const time = z.number().int();

export const exportQuerySchema = z.strictObject({
  /** Events, edges and findings from this time (Unix ms) on. Default: the last 24 hours. */
  since: z.coerce.number().int("since is a time in Unix milliseconds").min(0).optional(),
});

export const exportDocumentSchema = z.object({
  format: z.literal("coral-export"),
  version: z.literal(1),
  mesh: z.object({ id: z.string() }),
  /** When the coordinator started writing the document. */
  exportedAt: time,
  /** What the document covers: events from `from`, edges seen and findings open or updated within. */
  window: z.object({ from: time, to: time }),
  /** Every service the store knows, with its instances, as `GET /v1/services?instances=true`. */
  services: z.array(serviceSummarySchema),
  /** The dependency graph seen within the window, as `GET /v1/topology`. */
  topology: topologyResponseSchema,
  /** Findings open now, or opened, updated or resolved within the window; oldest first. */
  findings: z.array(findingSchema),
  /** Events within the window, newest stored first, as `GET /v1/events` pages them. */
  events: z.array(eventViewSchema),
  /** How many of each the document holds; last, so a cut-short document is told by its absence. */
  totals: z.object({
    services: z.number().int(),
    edges: z.number().int(),
    findings: z.number().int(),
    events: z.number().int(),
  }),
});
export type ExportDocument = z.infer<typeof exportDocumentSchema>;
