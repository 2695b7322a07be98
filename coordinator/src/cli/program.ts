import { CoralError, docsFor, type ErrorCode, parseDuration } from "@coral-mesh/sdk-proto";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import packageJson from "../../package.json" with { type: "json" };
import { checkApiToken } from "../api/api-token.js";
import { defaultDataDir } from "./api-client.js";
import { discoveryCheckCommand } from "./discovery-check.js";
import { findingShow, findingsList, summaryShow } from "./findings-commands.js";
import { agentsList, agentsRemove, eventsList, status, tokenCreate, tokenList, tokenRevoke } from "./mesh-commands.js";
import { metricsShow, serviceShow, servicesList, topologyShow } from "./model-commands.js";
import { type ExitCode, type Io, processIo } from "./output.js";
import { coordinatorServiceHelp } from "./service-help.js";

const port = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("a port is a whole number from 0 to 65535.");
  return n;
};
const duration = (value: string): number => {
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidArgumentError('a duration is a number and a unit: "10s", "5m", "24h", "7d".');
  return ms;
};
const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The options every command that talks to a running coordinator takes. */
function apiCommand(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .option("--data-dir <dir>", "the coordinator's data directory, where it writes its API address", defaultDataDir())
    .option("--api <url>", "the coordinator's API URL (instead of finding it through --data-dir)")
    .addOption(new Option("--api-token <token>", "the API token, when the API has one").env("CORAL_API_TOKEN"))
    .option("--json", "print JSON");
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
 * An option that takes a value, followed by another option (`--name --json`), would take that
 * option as its value: commander cannot tell, so this looks at the words as they were typed.
 * `--name=--json` says it is meant and passes.
 */
function refuseOptionsAsValues(command: Command, argv: string[]): void {
  const takesValue = new Map<string, string>();
  for (const option of command.options) {
    if (!option.required && !option.optional) continue;
    for (const flag of [option.long, option.short]) if (flag) takesValue.set(flag, option.long ?? flag);
  }
  for (let i = 0; i < argv.length - 1; i++) {
    const word = argv[i] as string;
    if (word === "--") return;
    const next = argv[i + 1] as string;
    const name = takesValue.get(word);
    if (name && /^--?[A-Za-z]/.test(next)) {
      throw new CoralError(
        "usage_invalid",
        `${name} needs a value, and "${next}" after it is an option: give ${name} its value first (${name} VALUE ${next}), or write ${name}=${next} if that is the value.`,
      );
    }
  }
}

/** How a failure reaches the user: one line `coral: [code] message`, or with `--json` a JSON document on stdout. */
function reportError(io: Io, json: boolean, code: ErrorCode, message: string): void {
  if (json) io.out(`${JSON.stringify({ error: { code, message, docs: docsFor(code) } }, null, 2)}\n`);
  else io.err(`coral: [${code}] ${message}\n`);
}

/**
 * Runs `coral ...`. User errors end as one line with their code and the fix and exit 1; bugs as
 * a short report and exit 70; usage errors exit 2. With `--json`, each of them is instead
 * `{ "error": { code, message, docs } }` on stdout, so a script reads one JSON document whatever
 * happened and tells the two apart by the exit code.
 */
export async function runCli(argv: string[], io: Io = processIo): Promise<number> {
  let exitCode: ExitCode = 0;
  const dashDash = argv.indexOf("--");
  const json = (dashDash === -1 ? argv : argv.slice(0, dashDash)).includes("--json");
  const program = new Command("coral")
    .description("Coral: one view of an application spread over many hosts.")
    .version(packageJson.version, "-v, --version")
    .exitOverride()
    .configureOutput({
      writeOut: io.out,
      writeErr: io.err,
      // Usage errors are reported below with the others, in the same shape.
      outputError: () => {},
    })
    // `coral agents remove NAME --json`: options after a subcommand are the subcommand's.
    .enablePositionalOptions()
    .hook("preAction", (_program, action) => refuseOptionsAsValues(action, argv));

  const discovery = program.command("discovery").description("your discovery Worker");
  discovery
    .command("check")
    .description("check that a URL serves Coral discovery, its latency, and this machine's clock against it")
    .argument("<url>", "the Worker's URL, e.g. https://coral-discovery.example.workers.dev")
    .option("--json", "print the result as JSON")
    .action(async (url: string, options: { json?: boolean }) => {
      exitCode = await discoveryCheckCommand(url, options, io);
    });

  const coordinator = program.command("coordinator").description("the hub of your mesh");
  coordinator
    .command("start")
    .description("run the coordinator: WireGuard hub, enrollment, agent service and API (needs root or CAP_NET_ADMIN)")
    .addHelpText("after", () => coordinatorServiceHelp())
    .addOption(new Option("--discovery <url>", "your discovery Worker's URL; remembered after the first start").env("CORAL_DISCOVERY_URL"))
    .option("--data-dir <dir>", "where keys, the store and the API address live", defaultDataDir())
    .option("--interface <name>", "WireGuard interface name (default coral0)")
    .option("--listen-port <port>", "WireGuard UDP port (default 51820)", port)
    .option("--endpoint <host:port>", "where agents can reach this host; repeat for several (default: detected)", collect)
    .option("--grpc-port <port>", "agent service port on the mesh address (default 51821)", port)
    .option("--api-host <address>", "address of the HTTP API (default 127.0.0.1; others need --api-token)")
    .option("--api-port <port>", "port of the HTTP API (default 51822; 0 picks one)", port)
    .addOption(new Option("--api-token <token>", "token the API requires (32+ characters)").env("CORAL_API_TOKEN"))
    .option("--heartbeat-interval <duration>", "how often agents send heartbeats (default 10s)", duration)
    .option(
      "--metrics-retention <duration>",
      "how long raw metric samples are kept (default 24h; rollups last longer, see coordinator.json)",
      duration,
    )
    .addOption(
      new Option("--wireguard <mode>", "kernel module, wireguard-go, whichever works, or off (agents on this machine only)").choices([
        "auto",
        "kernel",
        "userspace",
        "off",
      ]),
    )
    .action(async (o: Record<string, unknown>) => {
      // Before anything is created: a short token is refused whether it came from the flag or the environment.
      checkApiToken(o.apiToken as string | undefined);
      const log = (line: string) => io.err(`${new Date().toISOString().slice(0, 19)}Z ${line}\n`);
      // Loaded here, not above: the other commands are clients of the API and need none of the daemon.
      const { startCoordinator } = await import("../coordinator.js");
      const running = await startCoordinator({
        dataDir: o.dataDir as string,
        log,
        ...(o.discovery ? { discoveryUrl: o.discovery as string } : {}),
        ...(o.interface ? { interfaceName: o.interface as string } : {}),
        ...(o.listenPort !== undefined ? { listenPort: o.listenPort as number } : {}),
        ...(o.endpoint ? { endpoints: o.endpoint as string[] } : {}),
        ...(o.grpcPort !== undefined ? { grpcPort: o.grpcPort as number } : {}),
        ...(o.apiHost ? { apiHost: o.apiHost as string } : {}),
        ...(o.apiPort !== undefined ? { apiPort: o.apiPort as number } : {}),
        ...(o.apiToken ? { apiToken: o.apiToken as string } : {}),
        ...(o.heartbeatInterval !== undefined ? { heartbeatIntervalMs: o.heartbeatInterval as number } : {}),
        ...(o.metricsRetention !== undefined ? { metricsRetentionMs: o.metricsRetention as number } : {}),
        ...(o.wireguard ? { wireguardMode: o.wireguard as "auto" | "kernel" | "userspace" | "off" } : {}),
      });
      const dataDirFlag = o.dataDir === defaultDataDir() ? "" : ` --data-dir ${o.dataDir as string}`;
      log(`ready: mesh ${running.meshId}. Invite an agent with \`coral token create${dataDirFlag}\`; Ctrl-C stops.`);
      const signal = await untilSignal(log);
      log(`${signal}: stopping (agents keep their keys and addresses)...`);
      await running.stop();
      log("stopped");
    });

  const token = program.command("token").description("invites for agents to join the mesh");
  apiCommand(token, "create", "make a join token and print its invite")
    .option("--ttl <duration>", "how long the invite works", "24h")
    .option("--uses <n>", "how many agents may join with it", "1")
    .option("--name <name>", "a label for `coral token list`")
    .action(async (o) => {
      exitCode = await tokenCreate(o, io);
    });
  apiCommand(token, "list", "list tokens and their state").action(async (o) => {
    exitCode = await tokenList(o, io);
  });
  apiCommand(token, "revoke", "revoke a token (agents that joined with it stay)")
    .argument("<id>", "the token id, from `coral token list`")
    .action(async (id: string, o) => {
      exitCode = await tokenRevoke(id, o, io);
    });

  apiCommand(program, "status", "the mesh, discovery, and every agent's health and path").action(async (o) => {
    exitCode = await status(o, io);
  });

  const agentsCommand = apiCommand(program, "agents", "list the agents of the mesh").enablePositionalOptions();
  agentsCommand.action(async (o) => {
    exitCode = await agentsList(o, io);
  });
  apiCommand(agentsCommand, "remove", "remove an agent: drop its peer, free its address, refuse its reconnection")
    .argument("<name>", "the agent's name")
    .action(async (name: string, o) => {
      exitCode = await agentsRemove(name, o, io);
    });

  apiCommand(program, "events", "what agents observed, newest first")
    .option("--agent <name>", "only this agent's events")
    .option("--kind <kind>", "only events of this kind, e.g. process.restarted")
    .option("--since <when>", "a span back from now (1h, 7d) or a time (2026-11-29T10:00:00Z)")
    .option("--limit <n>", "at most this many (default 500; any number, fetched a page at a time)")
    .option("--before <id>", "only events older than this one (its ID): the next page")
    .action(async (o) => {
      exitCode = await eventsList(o, io);
    });

  apiCommand(program, "services", "every service across agents (or one, with its instances): versions, health, dependencies")
    .argument("[service]", "one service: its instances by agent")
    .option("--instances", "with --json, every service's instances too")
    .action(async (service: string | undefined, o) => {
      exitCode = service === undefined ? await servicesList(o, io) : await serviceShow(service, o, io);
    });

  apiCommand(program, "topology", "the dependency graph: which service calls which, resolved across agents")
    .option("--format <format>", "text, json or dot (Graphviz)", "text")
    .option("--since <when>", "edges seen since a span back from now (default 1h) or a time")
    .action(async (o) => {
      exitCode = await topologyShow(o, io);
    });

  apiCommand(program, "metrics", "a service's metrics over time, with a trend line")
    .argument("<service>", "the service's name, from `coral services`")
    .option("--metric <name>", "only this metric, e.g. service.cpu.cores")
    .option("--since <when>", "a span back from now (default 1h) or a time")
    .addOption(new Option("--resolution <r>", "raw samples or rollups (default: by span)").choices(["raw", "1m", "1h"]))
    .action(async (service: string, o) => {
      exitCode = await metricsShow(service, o, io);
    });

  const findingsCommand = apiCommand(program, "findings", "what is wrong, most severe first, each with what to do")
    .enablePositionalOptions()
    .option("--all", "resolved findings too")
    .option("--service <name>", "only findings on this service, or whose root cause it is")
    .option("--agent <name>", "only this agent's findings")
    .option("--kind <kind>", "only findings of this kind, e.g. crash-loop")
    .action(async (o) => {
      exitCode = await findingsList(o, io);
    });
  apiCommand(findingsCommand, "show", "one finding: its root cause, confidence, recommendation and evidence as a timeline")
    .argument("<id>", "the finding's id, from `coral findings`")
    .action(async (id: string, o) => {
      exitCode = await findingShow(id, o, io);
    });

  apiCommand(program, "summary", "the digest: what changed, what broke and what fixed it, quiet services, SDK adoption")
    .option("--since <when>", "how far back: a span (24h, 7d) or a time (2026-11-29T10:00:00Z)", "24h")
    .action(async (o) => {
      exitCode = await summaryShow(o, io);
    });

  apiCommand(program, "ask", "ask about the mesh in plain language: answered from its findings, citing the evidence")
    .argument("<question>", 'e.g. "why is checkout slow since this morning?"')
    .option("--model <provider:model>", "this model instead of the configured one, e.g. anthropic:claude-sonnet-5-5 or openai:llama3.1")
    .option("--continue", "a follow-up to the last question (kept for an hour)")
    .action(async (question: string, o) => {
      const { ask } = await import("./ask-command.js");
      exitCode = await ask(question, o, io);
    });
  apiCommand(
    program,
    "mcp",
    "serve Coral's read-only tools to an MCP client (Claude Desktop, Claude Code) on stdio, through the running coordinator",
  ).action(async (o) => {
    // Loaded here: the MCP library is for this command alone.
    const { mcpServe } = await import("./mcp-command.js");
    exitCode = await mcpServe(o, io);
  });

  apiCommand(program, "export", "services, topology, findings and events as one JSON document, to stdout (progress on stderr)")
    .option("--since <when>", "events, edges and findings since a span back from now (24h, 7d) or a time", "24h")
    .action(async (o) => {
      const { exportDump } = await import("./export-command.js");
      exitCode = await exportDump(o, io);
    });

  apiCommand(program, "top", "the services' health, CPU and memory and the open findings, live (q quits, j/k or arrows move, s sorts)")
    .option("--interval <duration>", "how often to refresh", duration, 2_000)
    .action(async (o) => {
      // Loaded here: ink and React are for this command alone.
      const { top } = await import("./top-command.js");
      exitCode = await top({ ...o, intervalMs: o.interval as number }, io);
    });

  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return 0;
      reportError(io, json, "usage_invalid", `${error.message.replace(/^error: /, "")} (run with --help for usage).`);
      return 2;
    }
    if (error instanceof CoralError) {
      reportError(io, json, error.code, error.message);
      return error.code === "usage_invalid" ? 2 : 1;
    }
    const message = `${error instanceof Error ? error.message : String(error)}. This is a bug; please report it with the command you ran.`;
    reportError(io, json, "internal_error", message);
    return 70;
  }
}
