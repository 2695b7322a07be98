/**
 * `npm run bench -w @coral-mesh/e2e` (root, WireGuard): what the relay costs a WireGuard tunnel.
 *
 * Two hosts of the NAT lab, both public on its "internet" (one plain link), and discovery served by
 * workerd in the internet namespace, with its relay room. Between the hosts, two WireGuard tunnels
 * side by side, so that every figure is measured against its baseline in the same minute (this
 * VM's speed drifts):
 *
 *   direct   hub 192.0.2.1 ↔ agent 192.0.2.2, each peer's endpoint the other's real address;
 *   relayed  hub 192.0.2.5 ↔ agent 192.0.2.6, the agent's hub peer pointing at its AgentRelay,
 *            the hub's WireGuard reached through its HubRelay (so, through the room both ways).
 *
 * Each relay end runs in its host's namespace, in a process of its own (as it runs in the agent's
 * and the coordinator's), started from this file with `--end`: its UDP socket on 127.0.0.1 must be
 * in the namespace of the WireGuard it feeds. The hub's end also serves a TCP sink.
 *
 * Measured, interleaved: the round-trip time of pings from the agent to the hub over each tunnel
 * (rounds of pings, direct and relayed in turn); the time to send a spooled backlog (1 MiB over one
 * TCP connection, until the hub says it has it all), with the relay messages and bytes it took,
 * against the mesh's relay budget; and the CPU time per MiB of every process in the lab (the relay
 * ends, workerd, each wireguard-go). Targets: relayed adds < 20 ms of RTT, 1 MiB in < 5 s.
 *
 * Options: --rounds N (10), --pings N per round and tunnel (20), --runs N (5), --bytes N (1048576),
 * --timeout S for one backlog (120), --json (the figures as JSON on stdout; progress always goes to stderr).
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import {
  encodeRelayTicket,
  meshIdFor,
  relayHeaders,
  relayLimits,
  signingKeyPairFromSeed,
  signRelayTicket,
  signRequest,
} from "@coral-mesh/sdk-proto";
import { generateKeyPair, WireGuardInterface } from "@coral-mesh/wireguard";
import { AgentRelay, HubRelay, type RelayCounters } from "@coral-mesh/wireguard/path";
import { createNatLab, missingForNatLab, type NatLab } from "@coral-mesh/wireguard/testing";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "10" },
    pings: { type: "string", default: "20" },
    runs: { type: "string", default: "5" },
    bytes: { type: "string", default: String(1024 * 1024) },
    timeout: { type: "string", default: "120" },
    json: { type: "boolean", default: false },
    end: { type: "boolean", default: false },
  },
});

const TARGET_ADDED_RTT_MS = 20;
const TARGET_TRANSFER_S = 5;
/** Tunnel addresses (TEST-NET-1): a /30 per tunnel. */
const TUNNEL = {
  direct: { hub: "192.0.2.1", agent: "192.0.2.2", prefix: 30 },
  relayed: { hub: "192.0.2.5", agent: "192.0.2.6", prefix: 30 },
} as const;
type Path = keyof typeof TUNNEL;
const PORTS = { direct: 51820, relayed: 51821, sink: 9000 } as const;

/** What a relay end is told on its standard input, first. */
interface EndConfig {
  role: "hub" | "agent";
  url: string;
  wireguardPort: number;
  /** The hub's: the mesh key's seed (base64), to sign each connection afresh. */
  seed?: string;
  /** The agent's: its relay ticket, as it travels in its header. */
  ticket?: string;
  /** The hub's: the TCP sink's port. */
  sinkPort?: number;
}

type EndCommand = { cmd: "counters" } | { cmd: "send"; host: string; port: number; bytes: number; timeoutMs: number };
interface EndReply {
  ready?: boolean;
  endpoint?: string;
  counters?: RelayCounters;
  ms?: number;
  received?: number;
  error?: string;
}

// ---------------------------------------------------------------------------------------------
// A relay end, in its host's namespace: `--end`, configured and commanded by JSON lines on stdin.

async function relayEnd(): Promise<void> {
  const reply = (message: EndReply) => process.stdout.write(`${JSON.stringify(message)}\n`);
  const input = (async function* () {
    let pending = "";
    for await (const chunk of process.stdin) {
      pending += String(chunk);
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        yield pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
    }
  })();
  const first = await input.next();
  if (first.done) return;
  const config = JSON.parse(first.value) as EndConfig;
  const log = (line: string) => process.stderr.write(`  ${new Date().toISOString().slice(11, 23)} [${config.role} end] ${line}\n`);
  let end: AgentRelay | HubRelay;
  let sink: ReturnType<typeof createServer> | undefined;
  if (config.role === "hub") {
    const keys = await signingKeyPairFromSeed(Buffer.from(config.seed ?? "", "base64"));
    const path = new URL(config.url).pathname;
    end = HubRelay.open({
      url: config.url,
      wireguardPort: config.wireguardPort,
      log,
      headers: async () => ({ [relayHeaders.role]: "hub", ...(await signRequest(keys, { method: "GET", path, body: "" })) }),
    });
    // The backlog's receiver: counts what comes, and says how much once the sender is done.
    sink = createServer((socket) => {
      let received = 0;
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
      });
      socket.on("end", () => socket.end(`${received}\n`));
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => sink?.listen(config.sinkPort, "0.0.0.0", resolve));
  } else {
    const ticket = config.ticket ?? "";
    end = await AgentRelay.open({
      url: config.url,
      wireguardPort: config.wireguardPort,
      log,
      headers: async () => ({ [relayHeaders.role]: "agent", [relayHeaders.ticket]: ticket }),
    });
  }
  await end.ready(AbortSignal.timeout(30_000));
  // The ends log a close but not a reconnection: say when the state changes, to time an outage.
  let state = end.state;
  setInterval(() => {
    if (end.state === state) return;
    state = end.state;
    log(`relay: ${state} (connections so far: ${end.counters.connects})`);
  }, 100).unref();
  reply({ ready: true, ...(end instanceof AgentRelay ? { endpoint: end.endpoint } : {}) });
  for await (const line of input) {
    const command = JSON.parse(line) as EndCommand;
    try {
      if (command.cmd === "counters") reply({ counters: { ...end.counters } });
      else reply(await sendBacklog(command.host, command.port, command.bytes, command.timeoutMs));
    } catch (error) {
      reply({ error: (error as Error).message });
    }
  }
  // The bench closed our input (or is gone): stop.
  end.close();
  sink?.close();
  process.exit(0);
}

/** `bytes` over one new TCP connection, timed until the receiver says it has them all. */
function sendBacklog(host: string, port: number, bytes: number, timeoutMs: number): Promise<EndReply> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${bytes} bytes to ${host}:${port} took over ${timeoutMs / 1000} s`));
    }, timeoutMs);
    let answer = "";
    socket.once("connect", () => socket.end(Buffer.alloc(bytes, 0x63)));
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString();
    });
    socket.once("end", () => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - started, received: Number(answer.trim()) });
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The bench.

/** Every child this process started, killed if it ends first (a failure, Ctrl-C). */
const children = new Set<ChildProcess>();

/** A relay end in a namespace, spoken to in JSON lines, one command at a time. */
class EndProcess {
  private readonly child: ChildProcess;
  private readonly waiting: Array<(reply: EndReply) => void> = [];
  private pending = "";
  private exited = false;

  constructor(ns: string, config: EndConfig) {
    const env = { ...process.env };
    // Node parses this CA bundle at every start (nodejs/node#40524); nothing here speaks TLS.
    delete env.NODE_EXTRA_CA_CERTS;
    this.child = spawn("ip", ["netns", "exec", ns, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), "--end"], {
      stdio: ["pipe", "pipe", "inherit"],
      env,
    });
    children.add(this.child);
    this.child.once("exit", (code, signal) => {
      children.delete(this.child);
      this.exited = true;
      for (const wake of this.waiting.splice(0)) wake({ error: `the ${config.role} end exited (${signal ?? `code ${code}`})` });
    });
    this.child.stdout?.on("data", (chunk: Buffer) => {
      this.pending += chunk.toString();
      let newline = this.pending.indexOf("\n");
      while (newline >= 0) {
        const line = this.pending.slice(0, newline);
        this.pending = this.pending.slice(newline + 1);
        this.waiting.shift()?.(JSON.parse(line) as EndReply);
        newline = this.pending.indexOf("\n");
      }
    });
    // The config goes on stdin, not argv: the hub's holds the mesh key's seed.
    this.child.stdin?.write(`${JSON.stringify(config)}\n`);
  }

  /** The end's first line: once its WebSocket to the room is open. */
  ready(): Promise<EndReply> {
    return this.next();
  }

  async request(command: EndCommand): Promise<EndReply> {
    const answer = this.next();
    this.child.stdin?.write(`${JSON.stringify(command)}\n`);
    const reply = await answer;
    if (reply.error) throw new Error(reply.error);
    return reply;
  }

  async counters(): Promise<RelayCounters> {
    return (await this.request({ cmd: "counters" })).counters as RelayCounters;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 3_000);
    await gone;
    clearTimeout(timer);
  }

  private next(): Promise<EndReply> {
    if (this.exited) return Promise.resolve({ error: "the relay end has exited" });
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

const progress = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] as number;
}
const median = (values: readonly number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );

/** `ping` in a namespace: the RTT of each reply (ms), and how many were sent. */
function ping(ns: string, target: string, count: number, intervalS = 0.05): Promise<{ rtts: number[]; sent: number }> {
  return new Promise((resolve) => {
    execFile(
      "ip",
      ["netns", "exec", ns, "ping", "-n", "-c", String(count), "-i", String(intervalS), "-W", "2", target],
      { encoding: "utf8" },
      // ping exits 1 when a reply is missing: its output still says which came.
      (_error, stdout) => {
        const rtts = [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
        resolve({ rtts, sent: count });
      },
    );
  });
}

/** Pings until one answers: the tunnel's handshake is done. */
async function waitForTunnel(ns: string, target: string, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if ((await ping(ns, target, 1, 0.2)).rtts.length > 0) return;
    await sleep(200);
  }
  throw new Error(`the ${what} tunnel did not answer a ping within 30 s`);
}

interface RttFigures {
  sent: number;
  received: number;
  medianMs: number;
  p95Ms: number;
  minMs: number;
  maxMs: number;
}
function rttFigures(rtts: number[], sent: number): RttFigures {
  const sorted = [...rtts].sort((a, b) => a - b);
  return {
    sent,
    received: sorted.length,
    medianMs: quantile(sorted, 0.5),
    p95Ms: quantile(sorted, 0.95),
    minMs: sorted[0] ?? Number.NaN,
    maxMs: sorted.at(-1) ?? Number.NaN,
  };
}

/** What a process in the lab is, from its argv: the relay ends, wireguard-go by interface, workerd... */
function processName(argv: string[], prefix: string): string {
  const [command = "?", ...args] = argv;
  const base = command.split("/").at(-1) ?? command;
  if (base === "wireguard-go") return `wireguard-go ${(args.at(-1) ?? "").slice(prefix.length)}`;
  if (args.includes("--end")) return "relay end (node)";
  if (args.some((a) => a.includes("wrangler"))) return "wrangler (node)";
  return base;
}

/**
 * CPU time (ms) of every process in these namespaces so far, by namespace and process: the sum of
 * its threads' run time from /proc/PID/task/TID/schedstat (ns), not /proc/PID/stat's 10 ms ticks.
 */
function cpuByProcess(namespaces: Record<string, string>, prefix: string): Map<string, number> {
  const cpu = new Map<string, number>();
  for (const [label, ns] of Object.entries(namespaces)) {
    const pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split("\n").filter(Boolean);
    for (const pid of pids) {
      try {
        const name = processName(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean), prefix);
        let ms = 0;
        for (const tid of readdirSync(`/proc/${pid}/task`)) {
          ms += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]) / 1e6;
        }
        const key = `${label}: ${name}`;
        cpu.set(key, (cpu.get(key) ?? 0) + ms);
      } catch {
        // The process (a ping) or one of its threads ended meanwhile.
      }
    }
  }
  return cpu;
}

interface TransferRun {
  ms: number;
  /** Relayed runs: messages the room took (both ways) and the datagram bytes it forwarded. */
  messages?: number;
  bytes?: number;
  messagesUp?: number;
  messagesDown?: number;
}

async function main(): Promise<void> {
  const missing = missingForNatLab();
  if (missing) throw new Error(`the relay benchmark ${missing}`);
  const rounds = Number(values.rounds);
  const pingsPerRound = Number(values.pings);
  const runs = Number(values.runs);
  const bytes = Number(values.bytes);
  const loadBefore = loadavg();

  const lab: NatLab = createNatLab();
  const cleanUp = () => {
    for (const child of children) child.kill("SIGKILL");
    lab.destroy();
  };
  // However this process ends: the lab's namespaces, its wireguard-go and the relay ends go with it.
  process.once("exit", cleanUp);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => process.exit(130));

  const interfaces: WireGuardInterface[] = [];
  const ends: EndProcess[] = [];
  let discovery: Awaited<ReturnType<typeof startLocalDiscovery>> | undefined;
  try {
    progress("starting the lab, discovery (workerd) and four WireGuard interfaces...");
    const hubHost = lab.addSite("hub", "none").hosts[0];
    const agentHost = lab.addSite("agent", "none").hosts[0];
    if (!hubHost || !agentHost) throw new Error("the lab has no hosts");
    discovery = await startLocalDiscovery({ netns: lab.internet.ns, ip: lab.internet.address, port: 8787 });

    const seed = randomBytes(32);
    const keys = await signingKeyPairFromSeed(seed);
    const url = `${discovery.url}/v1/meshes/${await meshIdFor(keys.publicKey)}/relay`;
    const wgKeys = {
      hubDirect: generateKeyPair(),
      agentDirect: generateKeyPair(),
      hubRelayed: generateKeyPair(),
      agentRelayed: generateKeyPair(),
    };
    const up = async (ns: string, short: string, privateKey: string, listenPort: number, address: string, prefix: number) => {
      const wg = await WireGuardInterface.up({
        name: `${lab.prefix}${short}`,
        privateKey,
        listenPort,
        address: `${address}/${prefix}`,
        netns: ns,
      });
      interfaces.push(wg);
      return wg;
    };
    const hubDirect = await up(hubHost.ns, "hd", wgKeys.hubDirect.privateKey, PORTS.direct, TUNNEL.direct.hub, TUNNEL.direct.prefix);
    const agentDirect = await up(
      agentHost.ns,
      "ad",
      wgKeys.agentDirect.privateKey,
      PORTS.direct,
      TUNNEL.direct.agent,
      TUNNEL.direct.prefix,
    );
    const hubRelayed = await up(hubHost.ns, "hr", wgKeys.hubRelayed.privateKey, PORTS.relayed, TUNNEL.relayed.hub, TUNNEL.relayed.prefix);
    const agentRelayed = await up(
      agentHost.ns,
      "ar",
      wgKeys.agentRelayed.privateKey,
      PORTS.relayed,
      TUNNEL.relayed.agent,
      TUNNEL.relayed.prefix,
    );

    const hubEnd = new EndProcess(hubHost.ns, {
      role: "hub",
      url,
      wireguardPort: PORTS.relayed,
      seed: seed.toString("base64"),
      sinkPort: PORTS.sink,
    });
    ends.push(hubEnd);
    const ticket = encodeRelayTicket(await signRelayTicket(keys, wgKeys.agentRelayed.publicKey, Date.now() + 86_400_000));
    const agentEnd = new EndProcess(agentHost.ns, { role: "agent", url, wireguardPort: PORTS.relayed, ticket });
    ends.push(agentEnd);
    const [hubReady, agentReady] = await Promise.all([hubEnd.ready(), agentEnd.ready()]);
    if (hubReady.error || agentReady.error || !agentReady.endpoint)
      throw new Error(`a relay end did not connect: ${hubReady.error ?? agentReady.error ?? "no endpoint"}`);

    // As the mesh sets them: the agent's hub peer keeps the path alive; the relayed hub peer has
    // no endpoint, and learns the HubRelay's socket from the agent's first datagram.
    await hubDirect.setPeer({
      publicKey: wgKeys.agentDirect.publicKey,
      endpoint: `${agentHost.address}:${PORTS.direct}`,
      allowedIps: [`${TUNNEL.direct.agent}/32`],
    });
    await agentDirect.setPeer({
      publicKey: wgKeys.hubDirect.publicKey,
      endpoint: `${hubHost.address}:${PORTS.direct}`,
      allowedIps: [`${TUNNEL.direct.hub}/32`],
      persistentKeepalive: 25,
    });
    await hubRelayed.setPeer({ publicKey: wgKeys.agentRelayed.publicKey, allowedIps: [`${TUNNEL.relayed.agent}/32`] });
    await agentRelayed.setPeer({
      publicKey: wgKeys.hubRelayed.publicKey,
      endpoint: agentReady.endpoint,
      allowedIps: [`${TUNNEL.relayed.hub}/32`],
      persistentKeepalive: 25,
    });
    await waitForTunnel(agentHost.ns, TUNNEL.direct.hub, "direct");
    await waitForTunnel(agentHost.ns, TUNNEL.relayed.hub, "relayed");
    // A few of each, unmeasured: the first packets after a handshake pay for warming caches.
    await ping(agentHost.ns, TUNNEL.direct.hub, 10, 0.02);
    await ping(agentHost.ns, TUNNEL.relayed.hub, 10, 0.02);

    // 1. Round-trip time, in rounds, the order swapped every round.
    progress(`round-trip time: ${rounds} rounds of ${pingsPerRound} pings per tunnel...`);
    const rtts: Record<Path, number[]> = { direct: [], relayed: [] };
    const sent: Record<Path, number> = { direct: 0, relayed: 0 };
    const countersBeforePings = { hub: await hubEnd.counters(), agent: await agentEnd.counters() };
    for (let round = 0; round < rounds; round++) {
      const order: Path[] = round % 2 === 0 ? ["direct", "relayed"] : ["relayed", "direct"];
      for (const path of order) {
        const result = await ping(agentHost.ns, TUNNEL[path].hub, pingsPerRound);
        rtts[path].push(...result.rtts);
        sent[path] += result.sent;
      }
    }
    const countersAfterPings = { hub: await hubEnd.counters(), agent: await agentEnd.counters() };

    // 2. A spooled backlog over one TCP connection, direct and relayed in turn.
    progress(`backlog: ${runs} runs of ${bytes} bytes per tunnel...`);
    const transfers: Record<Path, TransferRun[]> = { direct: [], relayed: [] };
    const hosts = { hub: hubHost.ns, agent: agentHost.ns, internet: lab.internet.ns };
    const cpu: Record<Path, Map<string, number>> = { direct: new Map(), relayed: new Map() };
    for (let run = 0; run < runs; run++) {
      const order: Path[] = run % 2 === 0 ? ["direct", "relayed"] : ["relayed", "direct"];
      for (const path of order) {
        const before = path === "relayed" ? { hub: await hubEnd.counters(), agent: await agentEnd.counters() } : undefined;
        const cpuBefore = cpuByProcess(hosts, lab.prefix);
        const started = new Date().toISOString().slice(11, 23);
        const sentBacklog = await agentEnd.request({
          cmd: "send",
          host: TUNNEL[path].hub,
          port: PORTS.sink,
          bytes,
          timeoutMs: Number(values.timeout) * 1000,
        });
        for (const [key, ms] of cpuByProcess(hosts, lab.prefix)) {
          cpu[path].set(key, (cpu[path].get(key) ?? 0) + ms - (cpuBefore.get(key) ?? ms));
        }
        if (sentBacklog.received !== bytes) throw new Error(`the hub received ${sentBacklog.received} of ${bytes} bytes (${path})`);
        const entry: TransferRun = { ms: sentBacklog.ms as number };
        if (before) {
          const after = { hub: await hubEnd.counters(), agent: await agentEnd.counters() };
          // The room counts every message it takes: the agent's going up, and the hub's.
          entry.messagesUp = after.agent.datagramsUp - before.agent.datagramsUp;
          entry.messagesDown = after.hub.datagramsUp - before.hub.datagramsUp;
          entry.messages = entry.messagesUp + entry.messagesDown;
          entry.bytes = after.agent.bytesUp - before.agent.bytesUp + (after.hub.bytesUp - before.hub.bytesUp);
        }
        transfers[path].push(entry);
        progress(
          `  ${path.padEnd(7)} run ${run + 1} (from ${started}): ${(entry.ms / 1000).toFixed(3)} s${entry.messages ? `, ${entry.messages} relay messages` : ""}`,
        );
      }
    }
    // The last segments (the connection's close) may still be in the relay: let them land.
    await sleep(1_000);
    const finalCounters = { hub: await hubEnd.counters(), agent: await agentEnd.counters() };
    const loadAfter = loadavg();

    // Figures.
    const rtt = { direct: rttFigures(rtts.direct, sent.direct), relayed: rttFigures(rtts.relayed, sent.relayed) };
    const addedMedianMs = rtt.relayed.medianMs - rtt.direct.medianMs;
    const addedP95Ms = rtt.relayed.p95Ms - rtt.direct.p95Ms;
    const transferFigures = (path: Path) => {
      const ms = median(transfers[path].map((t) => t.ms));
      return { runsMs: transfers[path].map((t) => Math.round(t.ms * 10) / 10), medianMs: ms, mbPerS: bytes / 1e6 / (ms / 1000) };
    };
    const backlog = { bytes, direct: transferFigures("direct"), relayed: transferFigures("relayed") };
    const relayedRuns = transfers.relayed;
    const messagesPerBacklog = median(relayedRuns.map((t) => t.messages ?? 0));
    const bytesPerBacklog = median(relayedRuns.map((t) => t.bytes ?? 0));
    const budget = {
      messagesPerMinute: relayLimits.maxMessagesPerMinute,
      bytesPerMinute: relayLimits.maxBytesPerMinute,
      messages: messagesPerBacklog,
      messagesUp: median(relayedRuns.map((t) => t.messagesUp ?? 0)),
      messagesDown: median(relayedRuns.map((t) => t.messagesDown ?? 0)),
      relayedBytes: bytesPerBacklog,
      /** How many such backlogs one minute's budget takes, bounded by messages and by bytes. */
      backlogsPerMinute: Math.floor(
        Math.min(relayLimits.maxMessagesPerMinute / messagesPerBacklog, relayLimits.maxBytesPerMinute / bytesPerBacklog),
      ),
      pingMessages:
        countersAfterPings.agent.datagramsUp -
        countersBeforePings.agent.datagramsUp +
        (countersAfterPings.hub.datagramsUp - countersBeforePings.hub.datagramsUp),
      connects: { hub: finalCounters.hub.connects, agent: finalCounters.agent.connects },
      /** Datagrams one end sent up that the other never got, over the whole bench, each way. */
      lost: {
        agentToHub: finalCounters.agent.datagramsUp - finalCounters.hub.datagramsDown,
        hubToAgent: finalCounters.hub.datagramsUp - finalCounters.agent.datagramsDown,
      },
    };
    const verdicts = {
      rtt: addedMedianMs < TARGET_ADDED_RTT_MS,
      backlog: backlog.relayed.medianMs < TARGET_TRANSFER_S * 1000,
      budget: messagesPerBacklog <= relayLimits.maxMessagesPerMinute && bytesPerBacklog <= relayLimits.maxBytesPerMinute,
    };
    // CPU per MiB sent, by process, over all runs of each tunnel; a process under 1 ms/MiB both ways is left out.
    const mibSent = (runs * bytes) / 1024 / 1024;
    const cpuPerMib = [...new Set([...cpu.direct.keys(), ...cpu.relayed.keys()])]
      .map((process) => ({
        process,
        directMs: (cpu.direct.get(process) ?? 0) / mibSent,
        relayedMs: (cpu.relayed.get(process) ?? 0) / mibSent,
      }))
      .filter((row) => row.directMs >= 1 || row.relayedMs >= 1)
      .sort((a, b) => b.relayedMs - a.relayedMs);
    const figures = {
      rtt: { ...rtt, addedMedianMs, addedP95Ms },
      backlog,
      cpuPerMib,
      budget,
      verdicts,
      load: { before: loadBefore, after: loadAfter },
    };

    if (values.json) {
      process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    } else {
      const f = (n: number, digits = 2) => n.toFixed(digits).padStart(9);
      const mib = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MiB`;
      process.stdout.write(
        [
          "",
          `round-trip time over WireGuard, agent → hub (${rounds} rounds, ${pingsPerRound} pings per tunnel per round):`,
          `  ${"tunnel".padEnd(10)} ${"replies".padStart(9)} ${"median ms".padStart(9)} ${"p95 ms".padStart(9)} ${"min ms".padStart(9)} ${"max ms".padStart(9)}`,
          ...(["direct", "relayed"] as const).map(
            (p) =>
              `  ${p.padEnd(10)} ${`${rtt[p].received}/${rtt[p].sent}`.padStart(9)} ${f(rtt[p].medianMs)} ${f(rtt[p].p95Ms)} ${f(rtt[p].minMs)} ${f(rtt[p].maxMs)}`,
          ),
          `  the relay adds ${addedMedianMs.toFixed(2)} ms at the median, ${addedP95Ms.toFixed(2)} ms at p95`,
          "",
          `a spooled backlog: ${bytes} bytes over one TCP connection, until the hub has it all (${runs} runs per tunnel):`,
          `  ${"tunnel".padEnd(10)} ${"median s".padStart(9)} ${"MB/s".padStart(9)}   runs (ms)`,
          ...(["direct", "relayed"] as const).map(
            (p) => `  ${p.padEnd(10)} ${f(backlog[p].medianMs / 1000, 3)} ${f(backlog[p].mbPerS)}   ${backlog[p].runsMs.join(", ")}`,
          ),
          "",
          "CPU time per MiB sent (all threads, ms), by host and process:",
          `  ${"process".padEnd(36)} ${"direct".padStart(9)} ${"relayed".padStart(9)}`,
          ...cpuPerMib.map((row) => `  ${row.process.padEnd(36)} ${f(row.directMs, 1)} ${f(row.relayedMs, 1)}`),
          "",
          `  relayed, it took ${messagesPerBacklog} relay messages (${budget.messagesUp} agent → hub, ${budget.messagesDown} hub → agent) and ${mib(bytesPerBacklog)} of datagrams`,
          `  the mesh's budget (${relayLimits.maxMessagesPerMinute} messages, ${mib(relayLimits.maxBytesPerMinute)} a minute) takes ${budget.backlogsPerMinute} such backlogs a minute`,
          `  (${sent.relayed} relayed pings took ${budget.pingMessages} messages; connections: hub ${budget.connects.hub}, agent ${budget.connects.agent};`,
          `  datagrams lost in the relay over the whole run: ${budget.lost.agentToHub} agent → hub, ${budget.lost.hubToAgent} hub → agent)`,
          "",
          `RTT: relayed adds ${addedMedianMs.toFixed(2)} ms (median), target < ${TARGET_ADDED_RTT_MS} ms: ${verdicts.rtt ? "met" : "NOT met"}`,
          `backlog: ${bytes} bytes relayed in ${(backlog.relayed.medianMs / 1000).toFixed(3)} s (median), target < ${TARGET_TRANSFER_S} s: ${verdicts.backlog ? "met" : "NOT met"}`,
          `budget: ${messagesPerBacklog} messages and ${mib(bytesPerBacklog)} per backlog, within a minute's ${relayLimits.maxMessagesPerMinute} and ${mib(relayLimits.maxBytesPerMinute)}: ${verdicts.budget ? "yes" : "NO"}`,
          `load average: ${loadBefore.map((l) => l.toFixed(2)).join(" ")} before, ${loadAfter.map((l) => l.toFixed(2)).join(" ")} after`,
          "",
        ].join("\n"),
      );
    }
  } finally {
    for (const end of ends) await end.stop();
    for (const wg of interfaces.reverse()) await wg.down().catch(() => {});
    await discovery?.stop();
    lab.destroy();
    process.off("exit", cleanUp);
  }
}

if (values.end) await relayEnd();
else await main();
