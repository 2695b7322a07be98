/**
 * `coral ask` as the API serves it: which model answers (the request's, or the config's), its
 * key (from the environment or the key file, read at each question so a new key needs no
 * restart), the conversations kept for follow-ups, and the loop. The tools and the opening
 * context come from outside, so this does not depend on how they read the store.
 */
import { readFileSync, statSync } from "node:fs";
import { setTimeout as sleepFor } from "node:timers/promises";
import { type AskAnswer, type AskRequest, type AskStreamMessage, CoralError, type Finding } from "@coral-mesh/sdk-proto";
import { type AskLimits, DEFAULT_LIMITS, runConversation } from "./conversation.js";
import { type Conversations, createConversations } from "./conversations.js";
import { DEFAULT_MODEL, priceOf } from "./pricing.js";
import { type ModelProvider, type ProviderName, type ProviderOptions, parseModel } from "./providers/provider.js";
import type { AskContext, AskTool } from "./tool.js";

/**
 * A provider whose module, and the SDK it wraps, loads at its first turn: the SDKs take a few
 * hundred milliseconds to import, which a coordinator that is never asked should not spend at
 * its start.
 */
function lazyProvider(name: ProviderName, options: ProviderOptions): ModelProvider {
  let made: Promise<ModelProvider> | undefined;
  const load = () =>
    (made ??=
      name === "anthropic"
        ? import("./providers/anthropic.js").then((m) => m.anthropicProvider(options))
        : import("./providers/openai.js").then((m) => m.openaiProvider(options)));
  return { provider: name, model: options.model, streamTurn: async (request, turn) => (await load()).streamTurn(request, turn) };
}

/** The `ask` section of coordinator.json, resolved (settings.ts). */
export interface AskSettings {
  /** `provider:model`. */
  model: string;
  /** Where the configured model's provider is served: an OpenAI-compatible server for local models. */
  baseUrl?: string | undefined;
  /** A file with the API key, mode 0600. */
  apiKeyFile?: string | undefined;
}

export interface AskServiceOptions {
  settings: AskSettings;
  tools: readonly AskTool[];
  buildContext: (question: string) => Promise<AskContext>;
  /** The findings of these ids, as the API shows them (missing ones left out). */
  findings: (ids: readonly string[]) => Finding[];
  now?: () => number;
  /** ANTHROPIC_API_KEY and OPENAI_API_KEY are read from here (default process.env). */
  env?: Record<string, string | undefined>;
  /** Per provider, overriding `settings.baseUrl` (tests and the bench point them at fakes). */
  baseUrls?: Partial<Record<ProviderName, string>>;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  limits?: Partial<AskLimits>;
  stallMs?: number;
  conversations?: Conversations;
}

export interface PreparedAsk {
  /** `provider:model` that will answer, or `deterministic`. */
  readonly model: string;
  run(emit: (message: AskStreamMessage) => void, signal?: AbortSignal): Promise<AskAnswer>;
}

export interface AskService {
  /** Checks what can be checked before anything streams (the model string, the conversation, the key file); throws CoralErrors. */
  prepare(request: AskRequest): PreparedAsk;
}

const KEY_ENV: Record<ProviderName, string> = { anthropic: "ANTHROPIC_API_KEY", openai: "OPENAI_API_KEY" };

/** The key in a file, refused unless only its owner can read it (as ssh does with its keys). */
export function readKeyFile(path: string): string {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    throw new CoralError("config_invalid", `ask.apiKeyFile ${path} does not exist; write the key there with mode 0600, or unset it.`);
  }
  if ((mode & 0o077) !== 0) {
    throw new CoralError(
      "key_permissions",
      `${path} (ask.apiKeyFile) is readable by other users (mode ${mode.toString(8).padStart(4, "0")}); run \`chmod 600 ${path}\`.`,
    );
  }
  return readFileSync(path, "utf8").trim();
}

export function createAskService(options: AskServiceOptions): AskService {
  const now = options.now ?? Date.now;
  const env = options.env ?? process.env;
  const conversations = options.conversations ?? createConversations({ now });
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const sleep = options.sleep ?? ((ms: number, signal?: AbortSignal) => sleepFor(ms, undefined, signal ? { signal } : {}));
  const configured = parseModel(options.settings.model || DEFAULT_MODEL);

  const providerFor = (spec: string | undefined): { provider?: ModelProvider; note?: string } => {
    const { provider, model } = spec ? parseModel(spec) : configured;
    const baseUrl = options.baseUrls?.[provider] ?? (provider === configured.provider ? options.settings.baseUrl : undefined);
    // The key file is the configured provider's: a question naming another provider never gets it.
    const keyFile = provider === configured.provider ? options.settings.apiKeyFile : undefined;
    const apiKey = env[KEY_ENV[provider]] || (keyFile ? readKeyFile(keyFile) : undefined);
    if (provider === "anthropic" && !apiKey) {
      return { note: `No model is configured: no ${KEY_ENV.anthropic} in the coordinator's environment and no ask.apiKeyFile.` };
    }
    if (provider === "openai" && !apiKey && !baseUrl) {
      return { note: "No model is configured: openai models need ask.baseUrl (a local server such as Ollama) or OPENAI_API_KEY." };
    }
    return { provider: lazyProvider(provider, { model, apiKey, baseUrl, ...(options.stallMs ? { stallMs: options.stallMs } : {}) }) };
  };

  return {
    prepare(request) {
      const conversation = request.conversationId ? conversations.get(request.conversationId) : conversations.create();
      const { provider, note } = providerFor(request.model);
      return {
        model: provider ? `${provider.provider}:${provider.model}` : "deterministic",
        async run(emit, signal) {
          const answer = await runConversation(
            {
              provider,
              ...(note ? { noModelNote: note } : {}),
              price: provider ? priceOf(provider.provider, provider.model) : undefined,
              tools: options.tools,
              buildContext: options.buildContext,
              findings: options.findings,
              sleep,
              limits,
            },
            conversation,
            request.question,
            emit,
            signal,
          );
          conversations.save(conversation);
          return answer;
        },
      };
    },
  };
}
