/**
 * The seam between what Coral knows and whoever asks: `coral ask`'s model, and MCP clients
 * through `coral mcp`. Tools read the store and never write it; what they return is bounded
 * in size and redacted before it leaves the coordinator.
 */
import type { Citation } from "@coral-mesh/sdk-proto";
import type { z } from "zod";

export interface ToolResult {
  /** JSON-serialisable, redacted, and bounded once serialised (each tool states its bound). */
  content: unknown;
  /** What `content` shows, for the answer's citations. */
  citations: Citation[];
  /** Set when the result was cut to its bound (the model is told, and can page). */
  truncated?: boolean;
}

/** One read-only tool over the store. */
export interface AskTool<Input = unknown> {
  /** snake_case, stable: models and MCP clients call it by this name. */
  name: string;
  /** For the model: what it returns and when to call it. */
  description: string;
  /** Checked before `run`; the JSON Schema sent to models and MCP clients is derived from it. */
  input: z.ZodType<Input>;
  run(input: Input, signal?: AbortSignal): Promise<ToolResult>;
}

/** What a conversation starts from, before any tool call: findings first. */
export interface AskContext {
  /** The opening context for the model, as text (redacted, bounded). */
  text: string;
  /** The findings it holds, open and recent, most relevant first. */
  findingIds: string[];
  citations: Citation[];
}
