/**
 * The public contract between the Coral agent and its collector plugins.
 * This first version fixes the identity every plugin declares and how the host
 * checks it; the runtime context and lifecycle hooks follow with the agent.
 */
import * as z from "zod";

/** The plugin API this package defines. A plugin declares the version it targets. */
export const PLUGIN_API_VERSION = 1;

export interface PluginIdentity<Options extends z.ZodType = z.ZodType> {
  /** Lowercase, digits and dashes: `passive`, `sdk`, `redis-collector`. */
  name: string;
  /** The plugin's own version, semver. */
  version: string;
  /** The plugin API version it was written against. */
  apiVersion: number;
  /** Validates the plugin's options before anything starts. */
  options: Options;
}

const identitySchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, "a plugin name is lowercase letters, digits and dashes, starting with a letter"),
  version: z.string().regex(/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/, "a plugin version is semver, e.g. 1.2.3"),
  apiVersion: z.number().int().positive(),
});

export class PluginDefinitionError extends Error {
  override readonly name = "PluginDefinitionError";
}

/** Declares a plugin; refuses a malformed identity or an API version this host does not speak. */
export function definePlugin<P extends PluginIdentity>(plugin: P): Readonly<P> {
  const parsed = identitySchema.safeParse(plugin);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PluginDefinitionError(`plugin "${String(plugin?.name)}": ${issue?.path.join(".") || "definition"}: ${issue?.message}`);
  }
  if (plugin.apiVersion !== PLUGIN_API_VERSION) {
    throw new PluginDefinitionError(
      `plugin "${plugin.name}" targets plugin API ${plugin.apiVersion}, but this agent speaks API ${PLUGIN_API_VERSION}; use a plugin version built for API ${PLUGIN_API_VERSION}.`,
    );
  }
  if (!(plugin.options instanceof z.ZodType)) {
    throw new PluginDefinitionError(`plugin "${plugin.name}": options must be a zod schema (use z.object({}) for none).`);
  }
  return Object.freeze(plugin);
}
