/**
 * What leaves the coordinator for a model or an MCP client is redacted here, whatever produced
 * it: config values under secret-looking keys (the SDK's own redaction), and in free text
 * (command lines, environment, event messages) the shapes secrets take there.
 */
import { REDACTED, redactConfig } from "@coral-mesh/sdk-proto/sdk";

export { REDACTED };

const SECRET_NAME =
  "[A-Za-z0-9_.-]*(?:pass(?:word|wd|phrase)?|secret|token|api[-_]?key|private[-_]?key|credentials?|auth|cookie|session(?:[-_]?(?:id|key))?|sid|signing[-_]?key|dsn)[A-Za-z0-9_.-]*";

/** Each replaces the secret part of a match, keeping what says what it was. */
const TEXT_RULES: Array<{ pattern: RegExp; keep: (m: RegExpExecArray) => string }> = [
  // `--password=x`, `--api-key x`, `-p x` is too vague to touch.
  { pattern: new RegExp(String.raw`(--${SECRET_NAME})(=|\s+)(?!-)("[^"]*"|'[^']*'|\S+)`, "gi"), keep: (m) => `${m[1]}${m[2]}${REDACTED}` },
  // `DB_PASSWORD=x`, `token: x`, `"apiKey": "x"` in environment, logs and JSON-ish text.
  {
    pattern: new RegExp(String.raw`(["']?\b${SECRET_NAME}["']?)(\s*[=:]\s*)((?:bearer|basic)\s+\S+|"[^"]*"|'[^']*'|[^\s,;&"'}]+)`, "gi"),
    keep: (m) => `${m[1]}${m[2]}${REDACTED}`,
  },
  // A `Cookie:` header's whole value: its pairs are named by the application, secret or not.
  { pattern: /\b((?:set-)?cookie)(\s*:\s*)[^\r\n]+/gi, keep: (m) => `${m[1]}${m[2]}${REDACTED}` },
  // `password hunter2`, `token abc123` in prose: a secret's name followed by a word with a digit in it.
  {
    pattern: /\b(password|passwd|passphrase|secret|token|api[-_ ]?key)(\s+(?:is\s+)?)(?=[^\s]*\d)([^\s,;]{6,})/gi,
    keep: (m) => `${m[1]}${m[2]}${REDACTED}`,
  },
  // `Authorization: Bearer x`, `bearer x`.
  { pattern: /\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}/gi, keep: (m) => `${m[1]}${m[2]}${REDACTED}` },
  // A password inside any URL: `postgres://user:pw@host/db`.
  { pattern: /\b([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):([^@/?#\s]+)@/gi, keep: (m) => `${m[1]}:${REDACTED}@` },
  // Keys whose shape gives them away wherever they stand.
  {
    pattern:
      /\b(?:sk-(?:ant-)?[A-Za-z0-9_-]{16,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,}|ya29\.[0-9A-Za-z_-]{20,}|glpat-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{30,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})\b/g,
    keep: () => REDACTED,
  },
  { pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, keep: () => REDACTED },
];

/** `text` with every secret-shaped part replaced by `[REDACTED]`. */
export function redactText(text: string): string {
  let out = text;
  for (const { pattern, keep } of TEXT_RULES) {
    // replace() hands the match and its groups first, as exec() would index them.
    out = out.replace(pattern, (...args) => keep(args as unknown as RegExpExecArray));
  }
  return out;
}

/**
 * A copy of `value` fit to leave the host: values under secret-looking keys replaced (as the
 * SDK's `Config` does), and every string passed through `redactText`.
 */
export function redactValue<T>(value: T): T {
  const { value: keyed } = redactConfig(value);
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return redactText(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(v)) out[key] = walk(child);
      return out;
    }
    return v;
  };
  return walk(keyed) as T;
}
