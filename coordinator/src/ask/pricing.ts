/**
 * List prices of the models `coral ask` knows, in US dollars per million tokens, from
 * Anthropic's published pricing (platform.claude.com, models overview and pricing pages), as
 * checked on 2026-12-04. Prompt caching and batch discounts are not counted: `coral ask` uses
 * neither, so the list price is what a question costs. A model not here (a local one behind an
 * OpenAI-compatible endpoint) costs 0, as it does.
 */
import type { ProviderName } from "./providers/provider.js";

export interface Price {
  inputPerMTok: number;
  outputPerMTok: number;
  /** Above this many prompt tokens in one request, every token of it is billed at `long`. */
  longPrompt?: { thresholdTokens: number; inputPerMTok: number; outputPerMTok: number };
}

export const PRICES_CHECKED = "2026-12-04";

/** The default: cheap and fast enough that an average question costs well under $0.02 (docs/ask.md). */
export const DEFAULT_MODEL = "anthropic:claude-haiku-5-5";

const anthropic: Record<string, Price> = {
  "claude-haiku-5-5": {
    inputPerMTok: 0.1,
    outputPerMTok: 0.5,
    longPrompt: { thresholdTokens: 100_000, inputPerMTok: 0.5, outputPerMTok: 2.5 },
  },
  "claude-sonnet-5-5": { inputPerMTok: 2, outputPerMTok: 10 },
  "claude-sonnet-5": { inputPerMTok: 2, outputPerMTok: 10 },
  "claude-opus-5-5": { inputPerMTok: 4, outputPerMTok: 20 },
  "claude-opus-5": { inputPerMTok: 5, outputPerMTok: 25 },
  "claude-opus-4-8": { inputPerMTok: 5, outputPerMTok: 25 },
  "claude-opus-4-7": { inputPerMTok: 5, outputPerMTok: 25 },
  "claude-opus-4-6": { inputPerMTok: 5, outputPerMTok: 25 },
  "claude-opus-4-5": { inputPerMTok: 5, outputPerMTok: 25 },
  "claude-sonnet-4-6": { inputPerMTok: 3, outputPerMTok: 15 },
  "claude-haiku-4-5": { inputPerMTok: 1, outputPerMTok: 5 },
  "claude-fable-5-1": { inputPerMTok: 10, outputPerMTok: 50 },
  "claude-fable-5": { inputPerMTok: 10, outputPerMTok: 50 },
};

/** The price of a model, or undefined when it has none (local, or not listed). A dated id (`…-20251001`) takes its family's. */
export function priceOf(provider: ProviderName, model: string): Price | undefined {
  if (provider !== "anthropic") return undefined;
  const exact = anthropic[model];
  if (exact) return exact;
  const undated = model.replace(/-\d{8}$/, "");
  return anthropic[undated];
}

/** One request's cost; `costOf` of each turn, summed, is a question's. */
export function turnCost(price: Price | undefined, inputTokens: number, outputTokens: number): number {
  if (!price) return 0;
  const long = price.longPrompt && inputTokens > price.longPrompt.thresholdTokens ? price.longPrompt : price;
  return (inputTokens * long.inputPerMTok + outputTokens * long.outputPerMTok) / 1_000_000;
}
