/**
 * Reading `--plugins=passive,sdk,./my-collector.js,coral-plugin-redis`: which
 * entries are built-ins, which are paths, which are npm packages.
 */

export const BUILTIN_PLUGINS = ["passive", "sdk", "ebpf"] as const;
export type BuiltinPlugin = (typeof BUILTIN_PLUGINS)[number];

export type PluginSource = { kind: "builtin"; name: BuiltinPlugin } | { kind: "path"; path: string } | { kind: "package"; name: string };

/** npm's rules for a package name, scoped or not. */
const PACKAGE_RE = /^(?:@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*$/;

export class PluginListError extends Error {
  override readonly name = "PluginListError";
}

export function parsePluginList(text: string): PluginSource[] {
  const entries = text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  if (entries.length === 0)
    throw new PluginListError(`--plugins is empty; name at least one plugin, e.g. --plugins=${BUILTIN_PLUGINS.slice(0, 2).join(",")}`);
  const seen = new Set<string>();
  return entries.map((entry) => {
    if (seen.has(entry)) throw new PluginListError(`plugin "${entry}" is listed twice in --plugins`);
    seen.add(entry);
    if ((BUILTIN_PLUGINS as readonly string[]).includes(entry)) return { kind: "builtin", name: entry as BuiltinPlugin };
    if (entry.startsWith("./") || entry.startsWith("../") || entry.startsWith("/")) return { kind: "path", path: entry };
    if (PACKAGE_RE.test(entry) && entry.length <= 214) return { kind: "package", name: entry };
    throw new PluginListError(
      `"${entry}" in --plugins is not a built-in (${BUILTIN_PLUGINS.join(", ")}), a path (starting with ./, ../ or /), or an npm package name`,
    );
  });
}
