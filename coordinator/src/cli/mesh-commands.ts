/** `coral token|status|agents|events`: the CLI over the coordinator's API. */
import { CoralError, describeIssue, type EventsResponse, type EventView, issueDetails, parseDuration } from "@coral-mesh/sdk-proto";
import type { AgentView, CreatedTokenView, StatusView, TokenView } from "../api/app.js";
import { tokenRequestLabels, tokenRequestSchema } from "../api/token-request.js";
import { ApiClient, type ApiTarget } from "./api-client.js";
import { countsLine } from "./findings-commands.js";
import { ago, humanSpan, isoTime, table } from "./format.js";
import { sinceTime } from "./model-commands.js";
import type { ExitCode, Io } from "./output.js";

type Json = { json?: boolean };

const printJson = (io: Io, value: unknown) => io.out(`${JSON.stringify(value, null, 2)}\n`);

export async function tokenCreate(options: ApiTarget & Json & { ttl: string; uses: string; name?: string }, io: Io): Promise<ExitCode> {
  const ttlMs = parseDuration(options.ttl);
  if (ttlMs === undefined) throw new CoralError("config_invalid", `--ttl ${options.ttl} is not a duration like 30m, 24h or 7d.`);
  const uses = Number(options.uses);
  // Checked here with the API's own schema, so the answer names the flags and needs no coordinator.
  const parsed = tokenRequestSchema.safeParse({ ttlMs, uses, ...(options.name !== undefined ? { name: options.name } : {}) });
  if (!parsed.success) {
    const flags: Record<string, string> = { ttlMs: `--ttl ${options.ttl}`, uses: `--uses ${options.uses}`, name: `--name ${options.name}` };
    const problems = parsed.error.issues.map((issue) => {
      const flag = flags[String(issue.path[0])];
      return `${describeIssue(issue, tokenRequestLabels)}${flag ? ` (${flag})` : ""}`;
    });
    throw new CoralError("config_invalid", `${problems.join("; ")}.`, {
      details: { issues: issueDetails(parsed.error, tokenRequestLabels) },
    });
  }
  const created = await ApiClient.locate(options).request<CreatedTokenView>("POST", "/v1/tokens", parsed.data);
  if (options.json) {
    printJson(io, created);
    return 0;
  }
  io.out(
    [
      `Token ${created.id}${created.name ? ` (${created.name})` : ""}: ${uses} use${uses === 1 ? "" : "s"}, expires ${isoTime(created.expiresAt)} (in ${humanSpan(created.expiresAt - Date.now())}).`,
      "",
      "Invite (shown only this once; anyone holding it can join until it expires or is used up):",
      "",
      `  ${created.invite}`,
      "",
      "On the host to add:",
      "",
      "  sudo npm install -g @coral-mesh/agent",
      `  sudo coral-agent --join ${created.invite} --plugins=passive,sdk`,
      "",
    ].join("\n"),
  );
  return 0;
}

export async function tokenList(options: ApiTarget & Json, io: Io): Promise<ExitCode> {
  const { tokens } = await ApiClient.locate(options).request<{ tokens: TokenView[] }>("GET", "/v1/tokens");
  if (options.json) {
    printJson(io, tokens);
    return 0;
  }
  if (tokens.length === 0) {
    io.out("No tokens. Make one with `coral token create`.\n");
    return 0;
  }
  const now = Date.now();
  io.out(
    `${table(
      ["id", "name", "state", "uses", "expires", "created"],
      tokens.map((t) => [t.id, t.name ?? "-", t.state, `${t.uses}/${t.maxUses}`, ago(t.expiresAt, now), ago(t.createdAt, now)]),
    )}\n`,
  );
  return 0;
}

export async function tokenRevoke(id: string, options: ApiTarget & Json, io: Io): Promise<ExitCode> {
  const result = await ApiClient.locate(options).request<{ revoked: string }>("DELETE", `/v1/tokens/${encodeURIComponent(id)}`);
  if (options.json) printJson(io, result);
  else io.out(`Token ${id} revoked; agents that already joined with it stay.\n`);
  return 0;
}

export async function status(options: ApiTarget & Json, io: Io): Promise<ExitCode> {
  const view = await ApiClient.locate(options).request<StatusView>("GET", "/v1/status");
  if (options.json) {
    printJson(io, view);
    return 0;
  }
  const now = Date.now();
  const d = view.discovery;
  const discoveryLine =
    d.state === "registered"
      ? `registered ${ago(d.lastRegistered, now)}${d.observedAddress ? `, seen from ${d.observedAddress}` : ""}`
      : d.state === "failing"
        ? `FAILING: ${d.lastError ?? "unknown error"} (last registered ${ago(d.lastRegistered, now)})`
        : "not registered yet";
  const counts = new Map<string, number>();
  for (const agent of view.agents) counts.set(agent.status, (counts.get(agent.status) ?? 0) + 1);
  const summary = [...counts].map(([state, n]) => `${n} ${state}`).join(", ");
  io.out(
    [
      `Mesh       ${view.mesh.id}`,
      `Hub        ${view.mesh.address}, WireGuard UDP ${view.mesh.listenPort}`,
      `Discovery  ${d.url}  ${discoveryLine}`,
      ...(view.relay ? [`Relay      ${view.relay.host}  ${relayLine(view.relay)}`] : []),
      `Agents     ${view.agents.length === 0 ? "none yet; invite one with `coral token create`" : `${view.agents.length} (${summary})`}`,
      ...(view.findings
        ? [`Findings   ${countsLine(view.findings)}${countsLine(view.findings) === "none open" ? "" : "; `coral findings` lists them"}`]
        : []),
      "",
    ].join("\n"),
  );
  if (view.agents.length > 0) io.out(`${agentTable(view.agents, now)}\n${pluginProblems(view.agents)}`);
  return 0;
}

export async function agentsList(options: ApiTarget & Json, io: Io): Promise<ExitCode> {
  const { agents } = await ApiClient.locate(options).request<{ agents: AgentView[] }>("GET", "/v1/agents");
  if (options.json) printJson(io, agents);
  else
    io.out(
      agents.length === 0
        ? "No agents yet; invite one with `coral token create`.\n"
        : `${agentTable(agents, Date.now())}\n${pluginProblems(agents)}`,
    );
  return 0;
}

export async function agentsRemove(name: string, options: ApiTarget & Json, io: Io): Promise<ExitCode> {
  const result = await ApiClient.locate(options).request<{ removed: string }>("DELETE", `/v1/agents/${encodeURIComponent(name)}`);
  if (options.json) printJson(io, result);
  else io.out(`Agent ${name} removed: its peer is gone and its address is free. To bring it back, join it again with a new invite.\n`);
  return 0;
}

/** The API's largest page; the CLI asks for as many pages as `--limit` needs. */
const EVENTS_PAGE = 1_000;

export async function eventsList(
  options: ApiTarget & Json & { agent?: string; kind?: string; since?: string; limit?: string; before?: string },
  io: Io,
): Promise<ExitCode> {
  const limit = options.limit === undefined ? 500 : Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new CoralError("config_invalid", `--limit ${options.limit} is not a whole number of 1 or more.`);
  let before = options.before === undefined ? undefined : Number(options.before);
  if (before !== undefined && (!Number.isInteger(before) || before < 1))
    throw new CoralError("config_invalid", `--before ${options.before} is not an event id (the ID column of \`coral events\`).`);
  const client = ApiClient.locate(options);
  const query = new URLSearchParams();
  if (options.since) query.set("since", String(sinceTime(options.since)));
  if (options.agent) query.set("agent", options.agent);
  if (options.kind) query.set("kind", options.kind);
  const events: EventView[] = [];
  while (events.length < limit) {
    query.set("limit", String(Math.min(EVENTS_PAGE, limit - events.length)));
    if (before !== undefined) query.set("before", String(before));
    const page = await client.request<EventsResponse>("GET", `/v1/events?${query}`);
    events.push(...page.events);
    if (page.next === null) break;
    before = page.next;
  }
  if (options.json) {
    printJson(io, events);
    return 0;
  }
  if (events.length === 0) {
    io.out("No events match.\n");
    return 0;
  }
  io.out(
    `${table(
      ["id", "time", "agent", "kind", "subject", "source", "details"],
      events.map((e) => [
        String(e.id),
        isoTime(e.coordinatorTime),
        e.agent ?? "-",
        e.kind,
        e.subject.name ?? e.subject.id,
        e.source ?? "-",
        Object.entries(e.attributes)
          .map(([k, v]) => `${k}=${v}`)
          .join(" "),
      ]),
    )}\n`,
  );
  const oldest = events.at(-1);
  if (events.length === limit && oldest) io.out(`(older: \`coral events --before ${oldest.id}\`)\n`);
  return 0;
}

/** The hub's connection to the mesh's relay, in words. */
function relayLine(relay: NonNullable<StatusView["relay"]>): string {
  const carrying = relay.agents === 0 ? "no agent relayed" : `${relay.agents} agent(s) relayed`;
  if (relay.state === "open") return `connected, ${carrying}, ${relay.datagrams} datagram(s) carried`;
  return `${relay.state === "connecting" ? "CONNECTING" : "CLOSED"} (agents without a direct path cannot reach this hub; the log's \`relay:\` lines say why), ${carrying}`;
}

function agentTable(agents: AgentView[], now: number): string {
  return table(
    ["agent", "mesh ip", "status", "last seen", "path", "endpoint", "plugins"],
    agents.map((a) => [
      a.name,
      a.meshIp,
      a.status,
      ago(a.lastSeen, now),
      a.path,
      a.endpoint ?? "-",
      a.plugins.map((p) => (p.state === "running" ? p.name : `${p.name} (${p.state})`)).join(", ") || "-",
    ]),
  );
}

/** Why each plugin that is not running is not: the table has room for its state only. */
function pluginProblems(agents: AgentView[]): string {
  const lines = agents.flatMap((a) =>
    a.plugins.filter((p) => p.state !== "running").map((p) => `  ${a.name} ${p.name} ${p.state}${p.lastError ? `: ${p.lastError}` : ""}`),
  );
  return lines.length === 0 ? "" : `\nPlugins not running:\n${lines.join("\n")}\n`;
}
