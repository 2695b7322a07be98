/** `coral services|topology|metrics`: the model of the application, for people and for scripts. */
import {
  CoralError,
  type MetricSeries,
  type MetricsResponse,
  parseDuration,
  type ServiceResponse,
  type ServicesResponse,
  type ServiceView,
  type TopologyResponse,
} from "@coral-mesh/sdk-proto";
import { ApiClient, type ApiTarget } from "./api-client.js";
import { ago, humanSpan, table } from "./format.js";
import type { ExitCode, Io } from "./output.js";

type Json = { json?: boolean };

const printJson = (io: Io, value: unknown) => io.out(`${JSON.stringify(value, null, 2)}\n`);

/** `--since 1h` (a span back from now) or `--since 2026-11-29T10:00:00Z` (a time). */
export function sinceTime(text: string, now = Date.now()): number {
  const span = parseDuration(text);
  if (span !== undefined) return now - span;
  const time = Date.parse(text);
  if (Number.isNaN(time))
    throw new CoralError("config_invalid", `--since ${text} is neither a span like 1h nor a time like 2026-11-29T10:00:00Z.`);
  return time;
}

const list = (items: string[], none = "-") => (items.length === 0 ? none : items.join(", "));

/** At most this many agent names in a row of `coral services`; past it, a count. */
const AGENT_NAMES_SHOWN = 3;

export async function servicesList(options: ApiTarget & Json & { instances?: boolean }, io: Io): Promise<ExitCode> {
  const path = options.json && options.instances ? "/v1/services?instances=true" : "/v1/services";
  const { services } = await ApiClient.locate(options).request<ServicesResponse>("GET", path);
  if (options.json) {
    printJson(io, services);
    return 0;
  }
  if (services.length === 0) {
    io.out("No services yet: agents report them within a collect interval of joining (`coral agents` lists the agents).\n");
    return 0;
  }
  const now = Date.now();
  io.out(
    `${table(
      ["service", "instances", "agents", "versions", "source", "health", "listens", "depends on", "used by", "last seen"],
      services.map((s) => [
        s.name,
        s.runningCount === s.instanceCount ? String(s.instanceCount) : `${s.runningCount} of ${s.instanceCount} running`,
        s.agents.length <= AGENT_NAMES_SHOWN ? list(s.agents) : `${s.agents.length} agents`,
        list(s.versions),
        s.source,
        s.health === "unknown" ? "-" : s.health,
        list(s.ports.map((port) => `:${port}`)),
        list(s.dependencies.map((d) => (d.kind === "service" ? `${d.name}:${d.port}` : d.name))),
        list([...new Set(s.dependents.map((d) => d.name))]),
        ago(s.lastSeen, now),
      ]),
    )}\n\`coral services NAME\` shows a service's instances.\n`,
  );
  return 0;
}

/** `coral services NAME`: one service, its instances by agent, what it depends on and what depends on it. */
export async function serviceShow(name: string, options: ApiTarget & Json, io: Io): Promise<ExitCode> {
  const { service: s } = await ApiClient.locate(options).request<ServiceResponse>("GET", `/v1/services/${encodeURIComponent(name)}`);
  if (options.json) {
    printJson(io, s);
    return 0;
  }
  const now = Date.now();
  // A dependency by the port it is called on; a dependent by name (the port is this service's).
  const refs = (items: ServiceView["dependencies"], port: boolean) =>
    list(
      items.map((d) => `${d.name}${port && d.kind === "service" ? `:${d.port}` : ""} (${ago(d.lastSeen, now)})`),
      "none",
    );
  io.out(
    [
      `${s.name}: ${s.instanceCount} instance${s.instanceCount === 1 ? "" : "s"} on ${s.agents.length} agent${s.agents.length === 1 ? "" : "s"}, ${s.source}${s.health === "unknown" ? "" : `, ${s.health}`}`,
      `  versions:   ${list(s.versions)}`,
      `  depends on: ${refs(s.dependencies, true)}`,
      `  used by:    ${refs(s.dependents, false)}`,
      "",
      table(
        ["agent", "instance", "version", "source", "health", "listens", "first seen", "last seen"],
        s.instances.map((i) => [
          i.agent,
          i.key,
          i.version ?? "-",
          i.source,
          i.stoppedAt === null ? (i.health ?? "-") : `stopped ${ago(i.stoppedAt, now)}`,
          list(i.listening),
          ago(i.firstSeen, now),
          ago(i.lastSeen, now),
        ]),
      ),
      "",
    ].join("\n"),
  );
  return 0;
}

export async function topologyShow(options: ApiTarget & Json & { format?: string; since?: string }, io: Io): Promise<ExitCode> {
  const format = options.json ? "json" : (options.format ?? "text");
  if (!["text", "json", "dot"].includes(format))
    throw new CoralError("config_invalid", `--format ${format} is not one of text, json, dot.`);
  const query = new URLSearchParams();
  if (options.since) query.set("since", String(sinceTime(options.since)));
  const graph = await ApiClient.locate(options).request<TopologyResponse>("GET", `/v1/topology?${query}`);
  if (format === "json") printJson(io, graph);
  else if (format === "dot") io.out(toDot(graph));
  else io.out(toText(graph, Date.now()));
  return 0;
}

/** The graph as an indented list: each service, then what it calls, with port, agents and when last seen. */
export function toText(graph: TopologyResponse, now: number): string {
  const window = `the last ${humanSpan(graph.window.to - graph.window.from)}`;
  if (graph.edges.length === 0 && graph.nodes.length === 0) return `No connections seen in ${window}.\n`;
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const lines = [`Dependencies seen in ${window} (${graph.edges.length} edge${graph.edges.length === 1 ? "" : "s"}):`, ""];
  const sources = [...new Set(graph.edges.map((e) => e.from))];
  for (const source of sources) {
    const node = byId.get(source);
    lines.push(`${node?.name ?? source}${node?.agents.length ? `  (${node.agents.join(", ")})` : ""}`);
    for (const edge of graph.edges.filter((e) => e.from === source)) {
      const target = byId.get(edge.to);
      const name = target?.kind === "external" ? `${target.name} (external)` : `${target?.name ?? edge.to}:${edge.port}`;
      const where = target?.kind === "service" && target.agents.length ? ` on ${target.agents.join(", ")}` : "";
      lines.push(`  → ${name}/${edge.protocol}${where}  seen ${ago(edge.lastSeen, now)}, ${edge.observations}×`);
    }
  }
  const isolated = graph.nodes.filter((n) => n.kind === "service" && !graph.edges.some((e) => e.from === n.id || e.to === n.id));
  if (isolated.length > 0) lines.push("", `No connections seen: ${isolated.map((n) => n.name).join(", ")}`);
  return `${lines.join("\n")}\n`;
}

/** Graphviz: `coral topology --format dot | dot -Tsvg > graph.svg`. */
export function toDot(graph: TopologyResponse): string {
  const q = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  const lines = ["digraph coral {", "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="sans-serif"];'];
  for (const node of graph.nodes) {
    const label = node.kind === "service" && node.agents.length ? `${node.name}\\n${node.agents.join(", ")}` : node.name;
    lines.push(`  ${q(node.id)} [label=${q(label)}${node.kind === "external" ? ", style=dashed" : ""}];`);
  }
  for (const edge of graph.edges) lines.push(`  ${q(edge.from)} -> ${q(edge.to)} [label=${q(`${edge.port}/${edge.protocol}`)}];`);
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

export async function metricsShow(
  service: string,
  options: ApiTarget & Json & { metric?: string; since?: string; resolution?: string },
  io: Io,
): Promise<ExitCode> {
  const query = new URLSearchParams();
  if (options.metric) query.set("metric", options.metric);
  if (options.since) query.set("since", String(sinceTime(options.since)));
  if (options.resolution) query.set("resolution", options.resolution);
  const response = await ApiClient.locate(options).request<MetricsResponse>(
    "GET",
    `/v1/services/${encodeURIComponent(service)}/metrics?${query}`,
  );
  if (options.json) {
    printJson(io, response);
    return 0;
  }
  const span = humanSpan(response.window.to - response.window.from);
  if (response.series.length === 0) {
    io.out(
      options.metric
        ? `${service} has no metric ${options.metric}; it has: ${list(response.metrics, "none")}.\n`
        : `No metrics for ${service} yet.\n`,
    );
    return 0;
  }
  const resolution = response.resolution === "raw" ? "raw samples" : `${response.resolution} rollups`;
  io.out(`${service}: the last ${span}, ${resolution}\n\n`);
  io.out(
    `${table(
      ["metric", "agent", "last", "min", "avg", "max", "trend"],
      response.series.map((s) => {
        const stats = summary(s);
        const unit = unitOf(s.metric);
        return [
          s.metric,
          s.agent,
          stats ? formatValue(stats.last, unit) : "-",
          stats ? formatValue(stats.min, unit) : "-",
          stats ? formatValue(stats.avg, unit) : "-",
          stats ? formatValue(stats.max, unit) : "-",
          sparkline(s.points.map((p) => p.avg)),
        ];
      }),
    )}\n`,
  );
  return 0;
}

function summary(series: MetricSeries): { last: number; min: number; max: number; avg: number } | undefined {
  const points = series.points;
  const last = points.at(-1);
  if (!last) return undefined;
  const count = points.reduce((n, p) => n + p.count, 0);
  return {
    last: last.avg,
    min: Math.min(...points.map((p) => p.min)),
    max: Math.max(...points.map((p) => p.max)),
    avg: points.reduce((sum, p) => sum + p.avg * p.count, 0) / count,
  };
}

type Unit = "bytes" | "share" | "plain";
const unitOf = (metric: string): Unit => (metric.endsWith("_bytes") ? "bytes" : metric.endsWith("utilization") ? "share" : "plain");

export function formatValue(value: number, unit: Unit): string {
  if (unit === "bytes") {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let v = value;
    let i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) {
      v /= 1000;
      i++;
    }
    return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
  }
  if (unit === "share") return `${(value * 100).toFixed(1)}%`;
  return Number.isInteger(value) ? String(value) : value.toPrecision(3);
}

const BARS = "▁▂▃▄▅▆▇█";

/** The values in at most `width` columns, each the mean of its share, scaled between their min and max. */
export function sparkline(values: number[], width = 32): string {
  if (values.length === 0) return "";
  const columns: number[] = [];
  const per = Math.max(1, values.length / width);
  for (let start = 0; start < values.length; start += per) {
    const slice = values.slice(Math.floor(start), Math.max(Math.floor(start) + 1, Math.floor(start + per)));
    columns.push(slice.reduce((a, b) => a + b, 0) / slice.length);
  }
  const min = Math.min(...columns);
  const max = Math.max(...columns);
  return columns.map((v) => BARS[max === min ? 0 : Math.round(((v - min) / (max - min)) * (BARS.length - 1))]).join("");
}
