/**
 * `coral-agent`: joins the mesh (the first time, with --join) and runs collector plugins
 * until SIGINT or SIGTERM. Errors end as one line with the fix and exit 1.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { agentConfigSchema, CoralError, parseConfigFile, parseDuration } from "@coral-mesh/sdk-proto";
import { DEFAULT_INTERFACE } from "@coral-mesh/wireguard/path";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import packageJson from "../package.json" with { type: "json" };
import { Agent, StoppedError } from "./agent.js";
import { PluginListError, parsePluginList } from "./plugin-list.js";
import { type ImportModule, loadPlugins } from "./plugins.js";
import { agentServiceHelp } from "./service-help.js";

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIo: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export function defaultAgentDataDir(): string {
  return process.env.CORAL_AGENT_DATA_DIR || join(homedir(), ".coral-agent");
}

/**
 * Resolves at the first SIGINT or SIGTERM, which starts a shutdown in order. Until the
 * process ends, another SIGTERM changes nothing (a supervisor saying it again, or
 * `npm start` passing on the Ctrl-C that the terminal already sent its whole process
 * group), and a second Ctrl-C stops at once, without cleaning up.
 */
function untilSignal(say: (line: string) => void): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const first = (signal: NodeJS.Signals) => {
      process.off("SIGINT", first);
      process.off("SIGTERM", first);
      process.on("SIGTERM", () => {});
      process.once("SIGINT", () => {
        say("second Ctrl-C: stopping now, without cleaning up");
        process.exit(130);
      });
      resolve(signal);
    };
    process.on("SIGINT", first);
    process.on("SIGTERM", first);
  });
}

/**
 * Runs the command line. `importModule` imports plugins from paths and packages; the built
 * agent's loader passes its own, as code compiled through `vm` has no `import()` on Node 20.
 */
export async function runAgentCli(argv: string[], io: Io = processIo, hooks: { importModule?: ImportModule } = {}): Promise<number> {
  const program = new Command("coral-agent")
    .description("Joins a Coral mesh and runs collector plugins.")
    .addHelpText("after", () => agentServiceHelp())
    .version(packageJson.version, "-v, --version")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .addOption(new Option("--join <invite>", "the invite from `coral token create` (first run only)").env("CORAL_INVITE"))
    .option("--plugins <list>", "plugins to run: built-in names, paths (./x.js) or npm packages, comma-separated")
    .option("--config <file>", "a JSON config file (name, interface, heartbeatInterval, plugin options)")
    .option(
      "--set <plugin.option=value>",
      "a plugin option, over the config file's; the value is JSON if it parses, else a string (repeatable)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option("--data-dir <dir>", "keys, mesh membership and the spool", defaultAgentDataDir())
    .option("--name <name>", "the agent's name in the mesh (default: the hostname)")
    .option("--interface <name>", `WireGuard interface name (default ${DEFAULT_INTERFACE.agent})`)
    .option("--heartbeat-interval <duration>", "overrides the coordinator's heartbeat interval", (value) => {
      const ms = parseDuration(value);
      if (ms === undefined) throw new InvalidArgumentError('a duration is a number and a unit: "10s", "1m".');
      return ms;
    })
    .addOption(
      new Option(
        "--wireguard <mode>",
        "kernel module, wireguard-go, whichever works, or off (a coordinator on this machine, over loopback)",
      ).choices(["auto", "kernel", "userspace", "off"]),
    );

  const log = (line: string) => io.err(`${new Date().toISOString().slice(0, 19)}Z ${line}\n`);
  try {
    program.parse(argv, { from: "user" });
    const o = program.opts<{
      join?: string;
      plugins?: string;
      config?: string;
      dataDir: string;
      name?: string;
      interface?: string;
      heartbeatInterval?: number;
      wireguard?: "auto" | "kernel" | "userspace" | "off";
      set?: string[];
    }>();
    const config = o.config ? readConfig(o.config) : {};
    const pluginOptions = withOverrides((config.plugins ?? {}) as Record<string, Record<string, unknown>>, o.set ?? []);
    const list = o.plugins ?? (Object.keys(pluginOptions).length > 0 ? Object.keys(pluginOptions).join(",") : "passive,sdk");
    const plugins = await loadPlugins(parsePluginList(list), pluginOptions, process.cwd(), hooks.importModule);
    const name = o.name ?? config.name;
    const interfaceName = o.interface ?? config.interface;
    const heartbeat = o.heartbeatInterval ?? (config.heartbeatInterval ? parseDuration(config.heartbeatInterval) : undefined);
    // Ctrl-C works from the start: while the agent is still reaching its coordinator, it
    // stops that and removes its interface.
    const stopping = new AbortController();
    const signalled = untilSignal(log).then((signal) => {
      stopping.abort();
      return signal;
    });
    const agent = await Agent.start({
      signal: stopping.signal,
      dataDir: o.dataDir,
      plugins,
      log,
      ...(o.join ? { invite: o.join } : {}),
      ...(name ? { name } : {}),
      ...(interfaceName ? { interfaceName } : {}),
      ...(heartbeat ? { heartbeatIntervalMs: heartbeat } : {}),
      ...(o.wireguard ? { wireguardMode: o.wireguard } : {}),
    });
    log(`running as ${agent.mesh.name} (${agent.mesh.answer.meshIp}) in mesh ${agent.mesh.meshId}; Ctrl-C stops`);
    const signal = await Promise.race([signalled, agent.ended]);
    // Stopped by itself (removed from the mesh): already stopped, and why is the error.
    if (signal instanceof Error) throw signal;
    log(`${signal}: stopping...`);
    await agent.stop();
    return 0;
  } catch (error) {
    if (error instanceof StoppedError) {
      io.err("coral-agent: stopped before it reached the coordinator\n");
      return 0;
    }
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof CoralError || error instanceof PluginListError) {
      io.err(`coral-agent: ${error.message}\n`);
      return 1;
    }
    io.err(
      `coral-agent: internal error: ${error instanceof Error ? error.message : String(error)}\nThis is a bug; please report it with the command you ran.\n`,
    );
    return 70;
  }
}

/** `--set sample.label=web` over the config file's `plugins.sample.label`. */
function withOverrides(plugins: Record<string, Record<string, unknown>>, sets: string[]): Record<string, Record<string, unknown>> {
  const merged = structuredClone(plugins);
  for (const set of sets) {
    const match = /^([^.=]+)\.([^=]+)=(.*)$/s.exec(set);
    if (!match) throw new CoralError("config_invalid", `--set ${set} is not PLUGIN.OPTION=VALUE, e.g. --set sample.label=web.`);
    const [, plugin = "", option = "", raw = ""] = match;
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // A plain string.
    }
    merged[plugin] = { ...merged[plugin], [option]: value };
  }
  return merged;
}

function readConfig(file: string) {
  if (!existsSync(file)) throw new CoralError("config_invalid", `The config file ${file} does not exist.`);
  const parsed = parseConfigFile(readFileSync(file, "utf8"), agentConfigSchema, file);
  if (!parsed.ok)
    throw new CoralError("config_invalid", parsed.errors.map((e) => `${file}${e.path ? ` ${e.path}` : ""}: ${e.message}`).join("; "));
  return parsed.value;
}
