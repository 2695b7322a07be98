import { CoralError } from "@coral/sdk-proto";
import { Command, CommanderError } from "commander";
import packageJson from "../../package.json" with { type: "json" };
import { discoveryCheckCommand } from "./discovery-check.js";
import { type ExitCode, type Io, processIo } from "./output.js";

/**
 * Runs `coral ...`. User errors end as one line with the fix and exit 1; bugs as
 * a short report and exit 70; usage errors exit 2 (commander prints those).
 */
export async function runCli(argv: string[], io: Io = processIo): Promise<number> {
  let exitCode: ExitCode = 0;
  const program = new Command("coral")
    .description("Coral: one view of an application spread over many hosts.")
    .version(packageJson.version, "-v, --version")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError("(run with --help for usage)");

  const discovery = program.command("discovery").description("your discovery Worker");
  discovery
    .command("check")
    .description("check that a URL serves Coral discovery, its latency, and this machine's clock against it")
    .argument("<url>", "the Worker's URL, e.g. https://coral-discovery.example.workers.dev")
    .option("--json", "print the result as JSON")
    .action(async (url: string, options: { json?: boolean }) => {
      exitCode = await discoveryCheckCommand(url, options, io);
    });

  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof CoralError) {
      io.err(`coral: ${error.message}\n`);
      return 1;
    }
    io.err(
      `coral: internal error: ${error instanceof Error ? error.message : String(error)}\nThis is a bug; please report it with the command you ran.\n`,
    );
    return 70;
  }
}
