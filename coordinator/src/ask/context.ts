/**
 * What a conversation of `coral ask` starts from, before the model calls any tool: the
 * findings (open, and resolved in the last day), those about what the question names first;
 * the topology around the services it names; and the mesh's status now. Text, redacted and
 * bounded, so the first answer costs a few thousand tokens however large the mesh.
 */
import type { Citation, Finding } from "@coral-mesh/sdk-proto";
import type { AgentView } from "../api/agent-views.js";
import { agentLister } from "../api/agent-views.js";
import { DEPENDENCY_WINDOW_MS } from "../api/routes/services-list.js";
import type { Store } from "../store/db.js";
import { compareFindings, findingCounts, listFindings } from "../store/finding-queries.js";
import { listServices, topology } from "../store/queries.js";
import { dedupe } from "./bound.js";
import { redactText } from "./redact.js";
import type { AskContext } from "./tool.js";

export interface AskContextOptions {
  db: Store;
  now?: () => number;
  /** The API's agent views; without it, health from the store alone. */
  agentList?: () => Promise<AgentView[]>;
}

/** The opening context's bound, in bytes of text. */
export const CONTEXT_LIMIT_BYTES = 6 * 1024;
const RECENT_MS = 24 * 3_600_000;
/** Each of the topology and status sections gets at most this much; findings take the rest. */
const SECTION_BYTES = 1_400;

const bytes = (text: string) => Buffer.byteLength(text);
const iso = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z");
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The names of `names` that `question` mentions as whole words, case-insensitively. */
export function namedIn(question: string, names: Iterable<string>): string[] {
  const text = question.toLowerCase();
  const found: string[] = [];
  for (const name of names) {
    if (name.length < 2) continue;
    // A name's own characters bound it: `api` is not in `rapid` nor in `api-gateway`, but is in `api's` and `(api)`.
    const pattern = new RegExp(`(?<![a-z0-9_-])${escapeRegExp(name.toLowerCase())}(?![a-z0-9_-]|\\.[a-z0-9])`);
    if (pattern.test(text)) found.push(name);
  }
  return found;
}

/** Lines up to `limit` bytes, and a last line saying how many were left out. */
function cutLines(lines: string[], limit: number, more: (left: number) => string): string[] {
  const out: string[] = [];
  let used = 0;
  for (const [i, line] of lines.entries()) {
    if (used + bytes(line) + 1 > limit) {
      out.push(more(lines.length - i));
      break;
    }
    out.push(line);
    used += bytes(line) + 1;
  }
  return out;
}

function findingLines(f: Finding): string {
  const root =
    f.rootCause.service !== f.service || f.rootCause.kind !== f.kind || f.rootCause.findingId
      ? `${f.rootCause.service ?? f.rootCause.agent ?? "?"} (${f.rootCause.kind}${f.rootCause.findingId ? `, finding ${f.rootCause.findingId}` : ""})`
      : `${f.service ?? f.agent ?? "?"} itself`;
  const e = f.evidence;
  const evidence = [
    ...e.notes.slice(0, 3),
    ...(e.events.length
      ? [
          `${e.events.length} events (${e.events
            .slice(-5)
            .map((x) => `${x.kind} #${x.id}`)
            .join(", ")})`,
        ]
      : []),
    ...e.metrics.slice(0, 2).map((m) => {
      const numbers = Object.entries(m.summary)
        .slice(0, 4)
        .map(([k, v]) => `${k} ${Number(v.toPrecision(4))}`)
        .join(", ");
      return `${m.metric} on ${m.agent} ${iso(m.since)}–${iso(m.until)}: ${numbers}`;
    }),
    ...(e.edges.length ? [`edges ${e.edges.map((x) => `${x.from}->${x.to}`).join(", ")}`] : []),
    ...(e.checks.length ? [`checks ${e.checks.map((c) => `${c.name} ${c.passing ? "passing" : "failing"}`).join(", ")}`] : []),
  ];
  const when = f.state === "open" ? `open since ${iso(f.openedAt)}` : `resolved ${iso(f.resolvedAt ?? f.updatedAt)}`;
  return [
    `- [${f.id}] ${f.severity} ${f.kind} on ${f.service ?? f.agent ?? "the mesh"} (${when}, confidence ${f.confidence}): ${f.summary}`,
    `  Root cause: ${root}.`,
    ...(evidence.length ? [`  Evidence: ${evidence.join("; ")}.`] : []),
    `  Recommendation: ${f.recommendation.action} — ${f.recommendation.step}`,
  ].join("\n");
}

export async function buildAskContext(options: AskContextOptions, question: string): Promise<AskContext> {
  const { db } = options;
  const now = options.now?.() ?? Date.now();
  const agentList = options.agentList ?? agentLister({ db, heartbeatIntervalMs: 10_000, peers: async () => new Map(), now: () => now });
  const services = listServices(db, now - DEPENDENCY_WINDOW_MS, now);
  const agents = await agentList();
  const namedServices = namedIn(
    question,
    services.map((s) => s.name),
  );
  const namedAgents = namedIn(
    question,
    agents.map((a) => a.name),
  );

  // Findings: open, and resolved within the day; those about what the question names first.
  const open = listFindings(db, { limit: 100 });
  const resolved = listFindings(db, { state: "resolved", since: now - RECENT_MS, limit: 50 }).filter(
    (f) => (f.resolvedAt ?? f.updatedAt) >= now - RECENT_MS,
  );
  const named = (f: Finding) =>
    (f.service !== null && namedServices.includes(f.service)) ||
    (f.rootCause.service !== null && namedServices.includes(f.rootCause.service)) ||
    (f.agent !== null && namedAgents.includes(f.agent)) ||
    (f.rootCause.agent !== null && namedAgents.includes(f.rootCause.agent));
  const ranked = [...open, ...resolved].sort((a, b) => (named(a) ? 0 : 1) - (named(b) ? 0 : 1) || compareFindings(a, b));

  // Topology: each named service's neighbourhood, one hop.
  const topologyLines: string[] = [];
  if (namedServices.length > 0) {
    const graph = topology(db, { since: now - DEPENDENCY_WINDOW_MS, until: now });
    for (const name of namedServices) {
      const id = `service:${name}`;
      const calls = graph.edges.filter((e) => e.from === id).map((e) => `${e.to.replace(/^service:/, "")}:${e.port}`);
      const callers = graph.edges.filter((e) => e.to === id).map((e) => e.from.replace(/^service:/, ""));
      const agentsOf = services.find((s) => s.name === name)?.agents ?? [];
      topologyLines.push(
        `- ${name} (on ${agentsOf.join(", ") || "no agent"}) calls ${calls.join(", ") || "nothing seen"}; called by ${[...new Set(callers)].join(", ") || "nothing seen"}.`,
      );
    }
  }

  const counts = findingCounts(db);
  const down = agents.filter((a) => a.status === "offline").map((a) => a.name);
  const degraded = agents.filter((a) => a.status === "degraded").map((a) => a.name);
  const stopped = services.filter((s) => s.runningCount === 0).map((s) => s.name);
  const failing = services.filter((s) => s.health === "not_serving").map((s) => s.name);
  const list = (names: string[]) =>
    names.length > 12 ? `${names.slice(0, 12).join(", ")} and ${names.length - 12} more` : names.join(", ");
  const statusLines = [
    `Agents: ${agents.length} (${agents.length - down.length - degraded.length} healthy${degraded.length ? `, ${degraded.length} degraded: ${list(degraded)}` : ""}${down.length ? `, ${down.length} offline: ${list(down)}` : ""}).`,
    `Services: ${services.length} (${services.length - stopped.length} running${stopped.length ? `, ${stopped.length} stopped: ${list(stopped)}` : ""}${failing.length ? `; not serving: ${list(failing)}` : ""}).`,
    `Open findings: ${counts.critical} critical, ${counts.warning} warning, ${counts.info} info.`,
  ];

  const head = [
    `Coral mesh, now ${iso(now)}.`,
    ...(namedServices.length || namedAgents.length
      ? [
          `The question names ${[
            ...(namedServices.length ? [`service${namedServices.length > 1 ? "s" : ""} ${namedServices.join(", ")}`] : []),
            ...(namedAgents.length ? [`agent${namedAgents.length > 1 ? "s" : ""} ${namedAgents.join(", ")}`] : []),
          ].join(" and ")}.`,
        ]
      : []),
  ];
  const topologyText = topologyLines.length
    ? [
        "",
        "## Topology around the services named (last 24 h)",
        ...cutLines(topologyLines.map(redactText), SECTION_BYTES, (n) => `- … ${n} more (get_topology)`),
      ]
    : [];
  const statusText = ["", "## Status", ...cutLines(statusLines.map(redactText), SECTION_BYTES, () => "- … (list_agents, list_services)")];
  const fixed = [...head, ...topologyText, ...statusText].join("\n");

  const findingsHeader = [
    "",
    `## Findings (${open.length} open, ${resolved.length} resolved in the last 24 h${namedServices.length || namedAgents.length ? "; about what the question names first" : ""})`,
  ];
  const budget = CONTEXT_LIMIT_BYTES - bytes(fixed) - bytes(findingsHeader.join("\n")) - 2;
  const shown: Finding[] = [];
  const blocks: string[] = [];
  let used = 0;
  for (const f of ranked) {
    const block = redactText(findingLines(f));
    if (used + bytes(block) + 1 > budget - 80) break;
    shown.push(f);
    blocks.push(block);
    used += bytes(block) + 1;
  }
  if (ranked.length === 0) blocks.push("- None: the findings engine sees nothing wrong.");
  else if (shown.length < ranked.length) blocks.push(`- … ${ranked.length - shown.length} more findings (list_findings, get_finding).`);

  const text = [head.join("\n"), ...findingsHeader, ...blocks, ...topologyText, ...statusText].join("\n");
  const citations: Citation[] = dedupe([
    ...shown.map((f) => ({ kind: "finding" as const, id: f.id })),
    ...namedServices.map((id) => ({ kind: "service" as const, id })),
    ...namedAgents.map((id) => ({ kind: "agent" as const, id })),
  ]);
  return { text, findingIds: shown.map((f) => f.id), citations };
}
