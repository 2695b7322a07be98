/**
 * `POST /v1/ask` (and `coral ask`): a question about the mesh, answered from its findings and
 * tools over the store, by a model when one is configured and deterministically otherwise.
 * The answer streams as Server-Sent Events, one message per step, named by its `type`; the
 * last message is always `done` or `error`.
 *
 * Compatibility: types and fields are only ever added.
 */
import * as z from "zod";
import { findingSchema } from "./findings.js";

export const askRequestSchema = z.strictObject({
  question: z.string().trim().min(1, "the question is empty").max(4000, "the question is longer than 4,000 characters"),
  /** Continue a conversation of the last hour (from an earlier `done`). */
  conversationId: z.string().min(1).max(100).optional(),
  /** `provider:model`, e.g. `anthropic:claude-sonnet-4-5` or `openai:llama3.1`; the config's default otherwise. */
  model: z.string().min(3).max(200).optional(),
});
export type AskRequest = z.infer<typeof askRequestSchema>;

export const citationSchema = z.object({
  kind: z.enum(["finding", "event", "service", "edge", "metric", "agent"]),
  /** The finding's or event's id, the service's name, `from->to:port` for an edge. */
  id: z.string(),
});
export type Citation = z.infer<typeof citationSchema>;

export const askUsageSchema = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  /** At the model's list price; 0 for a local model or the deterministic answer. */
  costUsd: z.number().nonnegative(),
});

export const askAnswerSchema = z.object({
  answer: z.string(),
  citations: z.array(citationSchema),
  findings: z.array(findingSchema),
  /** `provider:model`, or `deterministic` when no model answered. */
  model: z.string(),
  usage: askUsageSchema,
  conversationId: z.string(),
  /** Why a model did not answer (no key configured, the provider failed): said to the user. */
  note: z.string().optional(),
});
export type AskAnswer = z.infer<typeof askAnswerSchema>;

export const askStreamMessageSchema = z.discriminatedUnion("type", [
  /** The next piece of the answer's text. */
  z.object({ type: z.literal("text"), delta: z.string() }),
  /** The model called a tool (its input, redacted); shown as progress. */
  z.object({ type: z.literal("tool"), name: z.string(), input: z.unknown() }),
  /** The whole answer; the stream ends after it. */
  z.object({ type: z.literal("done"), answer: askAnswerSchema }),
  /** The question could not be answered at all; the stream ends after it. */
  z.object({ type: z.literal("error"), code: z.string(), message: z.string() }),
]);
export type AskStreamMessage = z.infer<typeof askStreamMessageSchema>;
