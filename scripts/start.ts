/**
 * `npm start`: a whole Coral mesh on this machine, to look at and take apart.
 *
 * Discovery (the Worker, served by workerd), a coordinator, and one agent running the
 * passive collector, ending with `coral status`. With root and WireGuard, the coordinator
 * and the agent each get a network namespace, joined by a veth link, and a real WireGuard
 * tunnel between them; nothing touches this machine's own network. Without them, both run
 * on loopback without a tunnel, which it says in one line. Ctrl-C stops everything and
 * leaves nothing behind: no namespace, interface or process.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LabCoordinator, stopChild, tsxNode, waitForLine } from "@coral-mesh/coordinator/testing";
import { startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import { COORDINATOR_ADDRESS } from "@coral-mesh/wireguard/path";
import { createLab, type Lab, missingForLab } from "@coral-mesh/wireguard/testing";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const agentBundle = join(root, "agent", "dist", "cli.js");
/** The agent's command, as users run it: it loads the bundle with the Node.js flags on its `#!` line. */
const agentBin = join(root, "agent", "bin", "coral-agent.cjs");
const coordinatorDir = join(root, "coordinator");
/** The CLI as a command that works from any directory (tsx's `--import` resolves from the working directory). */
const coralBin = join(coordinatorDir, "bin", "coral.js");
/** Words as one line a shell runs as they are: each quoted where it needs it. */
const shellLine = (words: string[]) => words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)).join(" ");
/** The coordinator's "ready" line without its hint, which names a `coral` this checkout has not installed. */
const readyOf = (line: string) => line.replace(/^.*? ready: /, "ready: ").replace(/\. Invite an agent with .*$/, "");
const say = (line: string) => process.stdout.write(`${line}\n`);
const step = (n: number, line: string) => say(`  [${n}/5] ${line}`);

/** Resolves on the first Ctrl-C (or SIGTERM). */
const interrupted = new Promise<void>((resolve) => {
  process.once("SIGINT", () => resolve());
  process.once("SIGTERM", () => resolve());
});

/** Polls the agents list until "local" is healthy (its plugin runs and a heartbeat said so), for up to 20 s. */
async function untilHealthy(agents: () => Promise<Array<{ name: string; status: string }>>): Promise<void> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
    if ((await agents()).some((a) => a.name === "local" && a.status === "healthy")) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<number> {
  if (!existsSync(agentBundle)) {
    say("coral: the packages are not built yet; run `npm install` (which builds them) or `npm run build` first.");
    return 1;
  }
  // CORAL_START_LOOPBACK=1 picks loopback even where namespaces would work (its test uses it).
  const missing = process.env.CORAL_START_LOOPBACK === "1" ? "is not wanted (CORAL_START_LOOPBACK=1)" : missingForLab();
  if (missing) {
    say(`coral: a WireGuard tunnel ${missing}: running the agent and the coordinator on loopback, without one.`);
    return loopback();
  }
  return namespaces();
}

/** The real thing: two namespaces, WireGuard between them. */
async function namespaces(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "coral-start-"));
  let lab: Lab | undefined;
  const stops: Array<() => Promise<unknown>> = [];
  say("coral: a local mesh with discovery, a coordinator and one agent (passive collector); Ctrl-C stops it all");
  try {
    lab = createLab();
    const net = lab;
    stops.push(async () => net.destroy());
    step(1, `namespaces ${lab.a} (coordinator, ${lab.addressA}) and ${lab.b} (agent, ${lab.addressB}), linked by a veth pair`);

    const discovery = await startLocalDiscovery({ netns: lab.a, ip: lab.addressA, port: 8787, persistTo: join(dir, "discovery") });
    stops.push(() => discovery.stop());
    step(2, `discovery (the Worker, in workerd) at ${discovery.url}`);

    const coordinator = new LabCoordinator({
      ns: lab.a,
      dataDir: join(dir, "coordinator"),
      interfaceName: `${lab.prefix}hub`,
      discoveryUrl: discovery.url,
    });
    await coordinator.start();
    stops.push(() => coordinator.stop());
    step(3, `coordinator: ${readyOf(coordinator.log.find((l) => / ready: /.test(l)) ?? "")}`);

    const { invite } = await coordinator.json<{ invite: string }>("token", "create", "--name", "npm-start");
    const agent = spawn(
      "ip",
      [
        "netns",
        "exec",
        lab.b,
        agentBin,
        "--join",
        invite,
        "--plugins=passive",
        "--data-dir",
        join(dir, "agent"),
        "--interface",
        `${lab.prefix}ag`,
        "--name",
        "local",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    stops.push(() => stopChild(agent));
    const joined = waitForLine(agent, / running as local /, "the agent", 60_000);
    await joined.ready;
    const tunnel = joined.log.find((l) => /tunnel up/.test(l)) ?? "";
    step(4, `agent "local" joined: ${tunnel.replace(/^\S+ /, "")}`);

    await untilHealthy(() => coordinator.json<Array<{ name: string; status: string }>>("agents"));
    step(5, "coral status:");
    const status = await coordinator.cli("status");
    say(status.out.replace(/^/gm, "        ").trimEnd());
    say("");
    say("Running. In another terminal, as root (then `services`, `topology`, `metrics SERVICE` in place of `status`):");
    const coral = (...args: string[]) =>
      shellLine(["ip", "netns", "exec", net.a, coralBin, ...args, "--data-dir", coordinator.options.dataDir]);
    say(`  ${coral("status")}`);
    say(`  ${coral("token", "create")}          # an invite for another agent`);
    say(`  ip netns exec ${lab.b} ping ${COORDINATOR_ADDRESS}          # the coordinator, through the tunnel`);
    say("Ctrl-C stops everything.");
    await interrupted;
    say("\nstopping: agent, coordinator, discovery, namespaces...");
    return 0;
  } catch (error) {
    say(`coral: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    if (lab) report(lab.prefix);
  }
}

/** Says what, if anything, was left behind (nothing, unless something is wrong). */
function report(prefix: string): void {
  const namespaces = execFileSync("ip", ["netns", "list"])
    .toString()
    .split("\n")
    .filter((l) => l.startsWith(prefix));
  let processes = "";
  try {
    processes = execFileSync("pgrep", ["-af", prefix]).toString().trim();
  } catch {
    // pgrep exits 1 when nothing matches.
  }
  if (namespaces.length === 0 && processes === "") say("stopped; nothing left behind.");
  else say(`stopped, but these are left: ${[...namespaces, processes].filter(Boolean).join("; ")}`);
}

/** Without root or WireGuard: the same parts on loopback, with no tunnel. */
async function loopback(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "coral-start-"));
  const stops: Array<() => Promise<unknown>> = [];
  const coral = (...args: string[]) => [...tsxNode, join(coordinatorDir, "src", "cli.ts"), ...args, "--data-dir", join(dir, "coordinator")];
  const run = (argv: string[]) =>
    new Promise<string>((done, fail) =>
      execFile(argv[0] as string, argv.slice(1), { cwd: coordinatorDir }, (error, out, err) =>
        error ? fail(new Error(err || String(error))) : done(out),
      ),
    );
  say("coral: a local mesh with discovery, a coordinator and one agent (passive collector); Ctrl-C stops it all");
  try {
    step(1, "no namespaces: everything on this machine's loopback");
    const discovery = await startLocalDiscovery({ ip: "127.0.0.1", port: 0, persistTo: join(dir, "discovery") });
    stops.push(() => discovery.stop());
    step(2, `discovery (the Worker, in workerd) at ${discovery.url}`);

    const coordinatorArgs = coral(
      "coordinator",
      "start",
      "--wireguard",
      "off",
      "--discovery",
      discovery.url,
      "--api-port",
      "0",
      "--grpc-port",
      "0",
    );
    const coordinator = spawn(coordinatorArgs[0] as string, coordinatorArgs.slice(1), {
      cwd: coordinatorDir,
      stdio: ["ignore", "ignore", "pipe"],
    });
    stops.push(() => stopChild(coordinator));
    const ready = waitForLine(coordinator, / ready: /, "the coordinator", 60_000);
    await ready.ready;
    step(3, `coordinator: ${readyOf(ready.log.find((l) => / ready: /.test(l)) ?? "")}`);

    const { invite } = JSON.parse(await run(coral("token", "create", "--name", "npm-start", "--json"))) as { invite: string };
    const agent = spawn(
      agentBin,
      ["--join", invite, "--plugins=passive", "--wireguard", "off", "--data-dir", join(dir, "agent"), "--name", "local"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    stops.push(() => stopChild(agent));
    await waitForLine(agent, / running as local /, "the agent", 60_000).ready;
    step(4, 'agent "local" joined, over loopback');

    await untilHealthy(async () => JSON.parse(await run(coral("agents", "--json"))) as Array<{ name: string; status: string }>);
    step(5, "coral status:");
    say((await run(coral("status"))).replace(/^/gm, "        ").trimEnd());
    say("");
    say("Running. In another terminal (what the agent found: `services`, `topology`, `metrics SERVICE` in place of `status`):");
    const pasted = (...args: string[]) => shellLine([coralBin, ...args, "--data-dir", join(dir, "coordinator")]);
    say(`  ${pasted("status")}`);
    say(`  ${pasted("token", "create")}          # an invite for another agent`);
    say("Ctrl-C stops everything.");
    await interrupted;
    say("\nstopping: agent, coordinator, discovery...");
    return 0;
  } catch (error) {
    say(`coral: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    say("stopped; nothing left behind.");
  }
}

process.exitCode = await main();
process.exit();
