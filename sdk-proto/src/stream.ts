/**
 * `GET /v1/stream`: the coordinator's live changes as Server-Sent Events, one message per
 * change, named by its `type` (the SSE event name). Messages say what changed, not the new
 * data: a follower fetches what it shows again through the model's routes. `hello` opens each
 * connection; `reset` means messages were dropped (the follower fell behind): fetch everything.
 *
 * Compatibility: types and fields are only ever added.
 */
import * as z from "zod";
import { severitySchema } from "./findings.js";

export const streamMessageSchema = z.discriminatedUnion("type", [
  /** Report batches stored from an agent: how much of each kind, and the newest event's id. */
  z.object({
    type: z.literal("batch"),
    agent: z.string(),
    events: z.number().int(),
    samples: z.number().int(),
    connections: z.number().int(),
    lastEventId: z.number().int().nullable(),
  }),
  /** An event the coordinator observed itself (agent health, plugins, paths, discovery). */
  z.object({ type: z.literal("event"), id: z.number().int(), agent: z.string().nullable(), kind: z.string(), subject: z.string() }),
  /** An agent's health changed. */
  z.object({ type: z.literal("health"), agent: z.string(), from: z.string().nullable(), to: z.string() }),
  /** A service instance appeared, or its version, health or listening sockets changed. */
  z.object({
    type: z.literal("service"),
    agent: z.string(),
    name: z.string(),
    change: z.enum(["observed", "health", "listening", "running"]),
  }),
  /** A finding was opened, updated or resolved. */
  z.object({
    type: z.literal("finding"),
    change: z.enum(["opened", "updated", "resolved"]),
    id: z.string(),
    service: z.string().nullable(),
    severity: severitySchema,
  }),
]);
export type StreamMessage = z.infer<typeof streamMessageSchema>;
