/**
 * Conversations kept for follow-up questions (`coral ask --continue`): in memory, each for an
 * hour after its last question, at most `max` of them (the least recently used go first).
 * What is kept is what was already sent to the model, so already redacted.
 */
import { randomUUID } from "node:crypto";
import { CoralError } from "@coral-mesh/sdk-proto";
import type { ModelMessage } from "./providers/provider.js";

export const CONVERSATION_TTL_MS = 3_600_000;
export const MAX_CONVERSATIONS = 200;

export interface Conversation {
  id: string;
  messages: ModelMessage[];
  usedAt: number;
}

export interface Conversations {
  create(): Conversation;
  /** The conversation, if it is still kept; conversation_not_found otherwise. */
  get(id: string): Conversation;
  /** Marks it used now, and keeps what it holds now. */
  save(conversation: Conversation): void;
  readonly size: number;
}

export function createConversations(options: { now?: () => number; ttlMs?: number; max?: number } = {}): Conversations {
  const now = options.now ?? Date.now;
  const ttl = options.ttlMs ?? CONVERSATION_TTL_MS;
  const max = options.max ?? MAX_CONVERSATIONS;
  // A Map keeps insertion order: re-inserting on save makes its first entry the least recently used.
  const kept = new Map<string, Conversation>();
  const sweep = () => {
    const at = now();
    for (const [id, c] of kept) if (at - c.usedAt > ttl) kept.delete(id);
  };
  return {
    create() {
      return { id: `conv_${randomUUID().replaceAll("-", "")}`, messages: [], usedAt: now() };
    },
    get(id) {
      sweep();
      const conversation = kept.get(id);
      if (!conversation) {
        throw new CoralError(
          "conversation_not_found",
          `No conversation ${id} of the last hour is kept (they last an hour after the last question): ask without --continue to start a new one.`,
        );
      }
      return conversation;
    },
    save(conversation) {
      conversation.usedAt = now();
      kept.delete(conversation.id);
      kept.set(conversation.id, conversation);
      sweep();
      while (kept.size > max) {
        const oldest = kept.keys().next().value as string;
        kept.delete(oldest);
      }
    },
    get size() {
      return kept.size;
    },
  };
}
