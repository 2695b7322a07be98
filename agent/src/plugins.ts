/**
 * Loading plugins by built-in name, path or npm package, and checking each (identity, API
 * version, options) before any of them starts.
 */
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { checkPlugin, type Plugin, PluginDefinitionError, parsePluginOptions } from "@coral-mesh/agent-plugins";
import { CoralError } from "@coral-mesh/sdk-proto";
import type { PluginSource } from "./plugin-list.js";

/** Built-in collectors, by name, loaded only when asked for. */
export const BUILTIN_REGISTRY: Partial<Record<string, () => Promise<Plugin>>> = {
  passive: async () => (await import("@coral-mesh/agent-plugins/passive")).default,
  sdk: async () => (await import("@coral-mesh/agent-plugins/sdk")).default,
  ebpf: async () => (await import("@coral-mesh/agent-plugins/ebpf")).default,
};

export interface LoadedPlugin {
  /** How the user named it (in --plugins and in the config file's `plugins`). */
  ref: string;
  plugin: Plugin;
  options: unknown;
}

function refOf(source: PluginSource): string {
  return source.kind === "path" ? source.path : source.name;
}

/** How a plugin module is imported: `import()`, or the caller's own (see boot.ts). */
export type ImportModule = (specifier: string) => Promise<unknown>;
const nativeImport: ImportModule = (specifier) => import(specifier);

async function importPlugin(source: PluginSource, cwd: string, importModule: ImportModule): Promise<unknown> {
  if (source.kind === "builtin") {
    const load = BUILTIN_REGISTRY[source.name];
    if (!load) throw new CoralError("config_invalid", `The built-in plugin "${source.name}" is not in this version of the agent yet.`);
    return load();
  }
  const specifier =
    source.kind === "path"
      ? pathToFileURL(resolve(cwd, source.path)).href
      : pathToFileURL(createRequire(join(cwd, "noop.js")).resolve(source.name)).href;
  const module = (await importModule(specifier)) as { default?: unknown; plugin?: unknown };
  return module.default ?? module.plugin;
}

/** Imports every plugin and validates its options; nothing starts unless all of them pass. */
export async function loadPlugins(
  sources: PluginSource[],
  optionsByRef: Record<string, unknown>,
  cwd = process.cwd(),
  importModule = nativeImport,
): Promise<LoadedPlugin[]> {
  const loaded: LoadedPlugin[] = [];
  for (const source of sources) {
    const ref = refOf(source);
    let plugin: unknown;
    try {
      plugin = await importPlugin(source, cwd, importModule);
    } catch (error) {
      if (error instanceof CoralError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      const missing = code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
      throw new CoralError(
        "config_invalid",
        missing
          ? `Plugin "${ref}" was not found: ${source.kind === "package" ? `install it (npm install ${source.name})` : "check the path"}.`
          : `Plugin "${ref}" failed to load: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    try {
      checkPlugin(plugin);
    } catch (error) {
      if (error instanceof PluginDefinitionError) throw new CoralError("config_invalid", `${ref}: ${error.message}`);
      throw error;
    }
    parsePluginOptionsOrExplain(plugin, optionsByRef[ref] ?? optionsByRef[plugin.name]);
    loaded.push({ ref, plugin, options: optionsByRef[ref] ?? optionsByRef[plugin.name] ?? {} });
  }
  const names = new Set<string>();
  for (const { plugin, ref } of loaded) {
    if (names.has(plugin.name))
      throw new CoralError("config_invalid", `Two plugins are named "${plugin.name}" (one is ${ref}); load only one of them.`);
    names.add(plugin.name);
  }
  return loaded;
}

function parsePluginOptionsOrExplain(plugin: Plugin, raw: unknown): void {
  try {
    parsePluginOptions(plugin, raw);
  } catch (error) {
    throw new CoralError(
      "config_invalid",
      `${error instanceof Error ? error.message : String(error)}; fix them in the config file or with --set.`,
    );
  }
}
