/**
 * One service: its instances by agent, versions and deploys, health and SDK checks, CPU and
 * memory over the last hour with deploy and restart markers, its findings, and what it calls
 * and what calls it.
 */
import type { EventsResponse, EventView, FindingsResponse, MetricSeries, MetricsResponse, ServiceResponse } from "@coral-mesh/sdk-proto";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api } from "../api.js";
import { ago, bytes, time } from "../format.js";
import { every, useLive } from "../live.js";
import { href } from "../route.js";

const HOUR = 3_600_000;
const MARKER_KINDS = new Set(["service.deployed", "process.restarted", "service.oom_killed"]);

interface Marker {
  t: number;
  kind: "deploy" | "restart";
  label: string;
}

function markersOf(events: EventView[]): Marker[] {
  return events
    .filter((e) => MARKER_KINDS.has(e.kind))
    .map((e) => ({
      t: e.coordinatorTime,
      kind: e.kind === "service.deployed" ? "deploy" : "restart",
      label:
        e.kind === "service.deployed" ? `deploy ${e.attributes.version ?? e.attributes.to ?? ""}`.trim() : e.kind.replace(/^\w+\./, ""),
    }));
}

/** Sums each metric across instances per timestamp, one line per agent. */
function lines(series: MetricSeries[], metric: string): { xs: number[]; ys: Array<Array<number | null>>; names: string[] } {
  const chosen = series.filter((s) => s.metric === metric);
  const agents = [...new Set(chosen.map((s) => s.agent))].sort();
  const times = [...new Set(chosen.flatMap((s) => s.points.map((p) => p.t)))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const ys = agents.map((agent) => {
    const row: Array<number | null> = times.map(() => null);
    for (const s of chosen.filter((x) => x.agent === agent)) {
      for (const p of s.points) {
        const i = index.get(p.t) as number;
        row[i] = (row[i] ?? 0) + p.avg;
      }
    }
    return row;
  });
  return { xs: times.map((t) => t / 1000), ys, names: agents };
}

function Chart({
  title,
  series,
  metric,
  markers,
  format,
  from,
  to,
}: {
  title: string;
  series: MetricSeries[];
  metric: string;
  markers: Marker[];
  format: (v: number) => string;
  from: number;
  to: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const { xs, ys, names } = lines(series, metric);
    const colors = ["#4f9cf7", "#3fb96f", "#f0a830", "#c678dd", "#f05252", "#56b6c2"];
    const overlay: HTMLDivElement[] = [];
    // Canvas strokes take colours, not CSS variables.
    const muted = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim() || "#888";
    const plot = new uPlot(
      {
        width: Math.max(300, el.clientWidth - 8),
        height: 200,
        scales: { x: { time: true, range: [from / 1000, to / 1000] } },
        series: [{}, ...names.map((name, i) => ({ label: name, stroke: colors[i % colors.length], width: 1.5, spanGaps: true }))],
        axes: [
          { stroke: muted, grid: { stroke: "rgba(128,128,128,0.15)" } },
          {
            stroke: muted,
            grid: { stroke: "rgba(128,128,128,0.15)" },
            values: (_u, vals) => vals.map(format),
            size: 90,
          },
        ],
        hooks: {
          // The markers are elements over the plot, so they can be focused, titled and found.
          draw: [
            (u) => {
              for (const m of overlay.splice(0)) m.remove();
              for (const m of markers) {
                const x = u.valToPos(m.t / 1000, "x");
                if (x < 0 || x > u.bbox.width / devicePixelRatio) continue;
                const div = document.createElement("div");
                div.className = `marker ${m.kind}`;
                div.dataset.kind = m.kind;
                div.title = `${m.label} at ${time(m.t)}`;
                div.tabIndex = 0;
                div.style.left = `${u.over.offsetLeft + x}px`;
                const label = document.createElement("span");
                label.textContent = m.label;
                div.append(label);
                el.append(div);
                overlay.push(div);
              }
            },
          ],
        },
      },
      [xs, ...ys] as uPlot.AlignedData,
      el,
    );
    return () => {
      for (const m of overlay) m.remove();
      plot.destroy();
    };
  }, [series, metric, markers, from, to]);
  return (
    <figure class="chart" ref={box} data-metric={metric} aria-label={title} style="margin:0 0 12px">
      <figcaption class="muted">{title}</figcaption>
    </figure>
  );
}

interface ServiceData {
  service: ServiceResponse["service"];
  metrics: MetricsResponse;
  events: EventView[];
  findings: FindingsResponse["findings"];
  from: number;
  to: number;
}

export function ServicePage({ name }: { name: string }) {
  const [samplesGate] = useState(() => every(5_000));
  const { data, error } = useLive<ServiceData>(
    async () => {
      const to = Date.now();
      const from = to - HOUR;
      const [service, metrics, events, findings] = await Promise.all([
        api<ServiceResponse>(`/v1/services/${encodeURIComponent(name)}`),
        api<MetricsResponse>(`/v1/services/${encodeURIComponent(name)}/metrics`, { since: from, until: to }),
        api<EventsResponse>("/v1/events", { service: name, limit: 200 }),
        api<FindingsResponse>("/v1/findings", { service: name, all: "true", limit: 50 }),
      ]);
      return { service: service.service, metrics, events: events.events, findings: findings.findings, from, to };
    },
    [name],
    // Samples come in every agent's batches: those refresh the charts at most every 5 s.
    (m) =>
      (m.type === "service" && m.name === name) || (m.type === "finding" && m.service === name) || (m.type === "batch" && samplesGate()),
  );
  if (error) return <p class="error">{error.message}</p>;
  if (!data) return <p class="muted">Loading {name}…</p>;
  const { service, metrics, events, findings } = data;
  const markers = markersOf(events);
  const byAgent = new Map<string, typeof service.instances>();
  for (const i of service.instances) byAgent.set(i.agent, [...(byAgent.get(i.agent) ?? []), i]);
  const checks = events.filter((e) => e.kind === "service.check_changed" || e.kind === "service.health_changed").slice(0, 10);
  const deploys = events.filter((e) => e.kind === "service.deployed").slice(0, 10);
  const cpu = metrics.metrics.includes("service.cpu.cores") ? "service.cpu.cores" : metrics.metrics.find((m) => m.includes("cpu"));
  const memory = metrics.metrics.includes("service.memory.rss_bytes")
    ? "service.memory.rss_bytes"
    : metrics.metrics.find((m) => m.includes("memory"));
  return (
    <section aria-labelledby="service-title">
      <h1 id="service-title">
        {service.name} <span class={`badge ${service.health}`}>{service.health}</span>
      </h1>
      <p class="muted">
        {service.source === "sdk" ? "through the SDK" : "passive only"} · versions {service.versions.join(", ") || "—"} · ports{" "}
        {service.ports.join(", ") || "—"} · first seen {ago(service.firstSeen)}
      </p>
      <div class="grid2">
        <div>
          {cpu ? (
            <Chart
              title="CPU (cores)"
              series={metrics.series}
              metric={cpu}
              markers={markers}
              format={(v) => v.toFixed(2)}
              from={data.from}
              to={data.to}
            />
          ) : (
            <p class="muted">No CPU samples in the last hour.</p>
          )}
        </div>
        <div>
          {memory ? (
            <Chart
              title="Memory (RSS)"
              series={metrics.series}
              metric={memory}
              markers={markers}
              format={bytes}
              from={data.from}
              to={data.to}
            />
          ) : (
            <p class="muted">No memory samples in the last hour.</p>
          )}
        </div>
      </div>
      <h2>Instances by agent</h2>
      <table>
        <thead>
          <tr>
            <th>agent</th>
            <th>key</th>
            <th>version</th>
            <th>source</th>
            <th>health</th>
            <th>listening</th>
            <th>last seen</th>
          </tr>
        </thead>
        <tbody>
          {[...byAgent].flatMap(([agent, instances]) =>
            instances.map((i) => (
              <tr key={`${agent}/${i.key}`}>
                <td>{agent}</td>
                <td>{i.key}</td>
                <td>{i.version ?? "—"}</td>
                <td>{i.source}</td>
                <td class={i.health ?? "unknown"}>{i.health ?? "—"}</td>
                <td>{i.listening.join(", ") || "—"}</td>
                <td>{ago(i.lastSeen)}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
      <div class="grid2">
        <div>
          <h2>Deploys</h2>
          {deploys.length === 0 ? (
            <p class="muted">None in the stored events.</p>
          ) : (
            <ul>
              {deploys.map((e) => (
                <li key={e.id}>
                  {time(e.coordinatorTime)} on {e.agent ?? "—"}:{" "}
                  {Object.entries(e.attributes)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(" ")}
                </li>
              ))}
            </ul>
          )}
          <h2>Health and SDK checks</h2>
          {checks.length === 0 ? (
            <p class="muted">No changes stored.</p>
          ) : (
            <ul>
              {checks.map((e) => (
                <li key={e.id}>
                  {time(e.coordinatorTime)} {e.kind}: {e.attributes.check ? `${e.attributes.check} ` : ""}
                  {e.attributes.from ?? "?"} → <span class={e.attributes.to ?? ""}>{e.attributes.to ?? "?"}</span>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div>
          <h2>Findings</h2>
          {findings.length === 0 ? (
            <p class="muted">None.</p>
          ) : (
            <ul>
              {findings.map((f) => (
                <li key={f.id}>
                  <span class={`badge ${f.severity}`}>{f.severity}</span> {f.state === "resolved" ? "(resolved) " : ""}
                  {f.summary}
                </li>
              ))}
            </ul>
          )}
          <h2>Dependencies</h2>
          <ul>
            {service.dependencies.map((d) => (
              <li key={`${d.name}:${d.port}`}>
                {d.kind === "service" ? <a href={href.service(d.name)}>{d.name}</a> : d.name} :{d.port}/{d.protocol}
              </li>
            ))}
            {service.dependencies.length === 0 && <li class="muted">none seen</li>}
          </ul>
          <h2>Dependents</h2>
          <ul>
            {service.dependents.map((d) => (
              <li key={`${d.name}:${d.port}`}>
                {d.kind === "service" ? <a href={href.service(d.name)}>{d.name}</a> : d.name} :{d.port}/{d.protocol}
              </li>
            ))}
            {service.dependents.length === 0 && <li class="muted">none seen</li>}
          </ul>
        </div>
      </div>
      <p>
        <a href={href.timeline({ service: service.name })}>Its timeline</a>
      </p>
    </section>
  );
}
