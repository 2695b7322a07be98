/**
 * Loading plugins by built-in name, path or npm package, and checking each (identity, API
 * version, options) before any of them starts.
 */
import { existsSync } from "node:fs";
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

/** The module a "cannot find" error names: a package (`left-pad`) or a file. */
function missingModule(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== "ERR_MODULE_NOT_FOUND" && code !== "MODULE_NOT_FOUND") return undefined;
  const message = error instanceof Error ? error.message : String(error);
  return /Cannot find (?:package|module) '([^']+)'/.exec(message)?.[1] ?? message;
}

/**
 * Why a plugin did not load, with the real cause: the plugin itself is not there, or it is and
 * one of its own dependencies is not (which "check the path" would send the user the wrong way on).
 */
function loadError(source: PluginSource, ref: string, cwd: string, error: unknown): CoralError {
  if (error instanceof CoralError) return error;
  const missing = missingModule(error);
  if (missing === undefined) {
    return new CoralError("config_invalid", `Plugin "${ref}" failed to load: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (source.kind === "path") {
    const file = resolve(cwd, source.path);
    if (!existsSync(file))
      return new CoralError("config_invalid", `Plugin "${ref}" was not found: check the path (${file} does not exist).`);
  } else if (source.kind === "package" && (missing === source.name || missing.startsWith(`${source.name}/`))) {
    return new CoralError("config_invalid", `Plugin "${ref}" was not found: install it (npm install ${source.name}).`);
  }
  const where =
    source.kind === "path"
      ? `where the plugin is (npm install ${missing}, in the plugin's directory)`
      : `(npm install ${missing}), or reinstall ${ref}`;
  return new CoralError("plugin_dependency_missing", `Plugin "${ref}" needs "${missing}", which is not installed: install it ${where}.`);
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
      throw loadError(source, ref, cwd, error);
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
