/** The `ask` section of coordinator.json: the model, a local model's base URL and the key file, resolved at start. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_MODEL, priceOf, turnCost } from "../src/ask/pricing.js";
import { CONFIG_FILE, resolveSettings } from "../src/settings.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function withConfig(config: unknown) {
  const dataDir = mkdtempSync(join(tmpdir(), "coral-ask-settings-"));
  dirs.push(dataDir);
  writeFileSync(join(dataDir, CONFIG_FILE), JSON.stringify({ discovery: "https://d.example.workers.dev", ...(config as object) }));
  return () => resolveSettings({ dataDir });
}

describe("ask settings", () => {
  it("default to the default model, with no base URL and no key file", () => {
    expect(withConfig({})().ask).toEqual({ model: DEFAULT_MODEL });
    expect(DEFAULT_MODEL).toBe("anthropic:claude-haiku-5-5");
  });

  it("read a local model's base URL, and the key file relative to the data directory", () => {
    const resolve = withConfig({ ask: { model: "openai:llama3.1", baseUrl: "http://127.0.0.1:11434/v1/", apiKeyFile: "model.key" } });
    const settings = resolve();
    expect(settings.ask.model).toBe("openai:llama3.1");
    expect(settings.ask.baseUrl).toBe("http://127.0.0.1:11434/v1");
    expect(settings.ask.apiKeyFile).toMatch(/coral-ask-settings-.*\/model\.key$/);
  });

  it("refuse a provider Coral does not know at start, and settings that do not parse", () => {
    expect(withConfig({ ask: { model: "gemini:pro" } })).toThrow(expect.objectContaining({ code: "model_unknown" }));
    expect(withConfig({ ask: { model: "claude" } })).toThrow(expect.objectContaining({ code: "config_invalid" }));
    expect(withConfig({ ask: { modle: "anthropic:x" } })).toThrow(
      expect.objectContaining({ code: "config_invalid", message: expect.stringContaining("modle") }),
    );
    expect(withConfig({ ask: { baseUrl: "ftp://x" } })).toThrow(expect.objectContaining({ code: "config_invalid" }));
  });
});

describe("prices", () => {
  it("price Anthropic's models at list price, dated ids as their family, and local models at 0", () => {
    expect(turnCost(priceOf("anthropic", "claude-haiku-5-5"), 100_000, 100_000)).toBeCloseTo(0.06);
    // Above 100K prompt tokens, the whole request at the long-prompt price.
    expect(turnCost(priceOf("anthropic", "claude-haiku-5-5"), 200_000, 0)).toBeCloseTo(0.1);
    expect(turnCost(priceOf("anthropic", "claude-sonnet-5-5"), 3_000, 400)).toBeCloseTo(0.01);
    expect(priceOf("anthropic", "claude-haiku-4-5-20251001")).toEqual(priceOf("anthropic", "claude-haiku-4-5"));
    expect(turnCost(priceOf("openai", "llama3.1"), 1_000_000, 1_000_000)).toBe(0);
  });
});
