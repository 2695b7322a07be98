/** The SDK's `Config` never returns secrets: values under secret-looking keys are replaced. */

export const REDACTED = "[REDACTED]";

const SECRET_KEY =
  /pass(word|wd|phrase)?$|secret|token|api[-_]?key|private[-_]?key|credential|^auth|authorization|cookie|session[-_]?key|signing[-_]?key|dsn$/i;

export interface Redacted {
  value: unknown;
  paths: string[];
}

/**
 * Copies `config`, replacing every value whose key looks like a secret, or whose key or
 * dotted path is in `extra`, and the password inside URLs such as `postgres://u:p@h/db`.
 */
export function redactConfig(config: unknown, extra: readonly string[] = []): Redacted {
  const names = new Set(extra.map((e) => e.toLowerCase()));
  const paths: string[] = [];
  const seen = new WeakSet<object>();

  const walk = (value: unknown, path: string[]): unknown => {
    if (typeof value === "string") return redactUrlPassword(value, path, paths);
    if (value === null || typeof value !== "object") return typeof value === "bigint" ? value.toString() : value;
    if (seen.has(value)) return "[Circular]";
    seen.add(value);
    if (Array.isArray(value)) return value.map((item, i) => walk(item, [...path, String(i)]));
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) {
      const childPath = [...path, key];
      const dotted = childPath.join(".");
      if (SECRET_KEY.test(key) || names.has(key.toLowerCase()) || names.has(dotted.toLowerCase())) {
        out[key] = REDACTED;
        paths.push(dotted);
      } else {
        out[key] = walk(child, childPath);
      }
    }
    return out;
  };

  return { value: walk(config, []), paths };
}

function redactUrlPassword(value: string, path: string[], paths: string[]): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):([^@/?#\s]+)@/i.exec(value);
  if (!match) return value;
  paths.push(path.join("."));
  return `${match[1]}:${REDACTED}@${value.slice(match[0].length)}`;
}
