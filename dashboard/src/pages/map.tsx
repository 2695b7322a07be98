/**
 * The map: services as nodes, resolved dependencies as edges, externals in a group of their
 * own. Laid out by dagre (layered: callers left of what they call), once per change of the
 * graph's shape; a change of health or findings only restyles the nodes, so a node turns red
 * in place. The list beside the graph is the keyboard's way to every node.
 */
import type { FindingsResponse, ServiceSummary, TopologyEdge, TopologyResponse } from "@coral-mesh/sdk-proto";
import type { ElementDefinition } from "cytoscape";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { AgentView } from "../agents-type.js";
import { api, prefetch } from "../api.js";
import { time } from "../format.js";
import { every, useLive } from "../live.js";
import { AGENTS, type EDGE_FIELDS, FINDINGS, MAP_REQUESTS, type SERVICE_FIELDS, SERVICES, topologyOf } from "../map-requests.js";
import { href } from "../route.js";

type Graph = typeof import("../graph.js");
type Core = import("cytoscape").Core;

const HOUR = 3_600_000;

type MapService = Pick<ServiceSummary, "name" | (typeof SERVICE_FIELDS)[number]>;
type MapTopology = Omit<TopologyResponse, "edges"> & { edges: Array<Pick<TopologyEdge, "from" | "to" | (typeof EDGE_FIELDS)[number]>> };

interface MapData {
  services: MapService[];
  topology: MapTopology;
  findings: FindingsResponse["findings"];
  agents: AgentView[];
}

/** What a node shows: its health, the worst open finding, and whether its agents are all gone. */
export type NodeState = "ok" | "down" | "unknown" | "external";

function nodeState(service: MapService | undefined, agents: Map<string, AgentView>): NodeState {
  if (!service) return "external";
  if (service.health === "not_serving") return "down";
  // Every instance's last process exited (killed, crashed, stopped): nothing serves its callers.
  if (service.instanceCount > 0 && service.runningCount === 0) return "down";
  const statuses = service.agents.map((a) => agents.get(a)?.status);
  if (statuses.length > 0 && statuses.every((s) => s === "offline" || s === "unhealthy")) return "down";
  return service.health === "serving" ? "ok" : "unknown";
}

function elements(data: MapData, group: boolean): ElementDefinition[] {
  const byName = new Map(data.services.map((s) => [s.name, s]));
  const agents = new Map(data.agents.map((a) => [a.name, a]));
  const worst = new Map<string, string>();
  const rank = { critical: 3, warning: 2, info: 1 } as const;
  for (const f of data.findings) {
    if (!f.service || f.state !== "open") continue;
    const was = worst.get(f.service) as keyof typeof rank | undefined;
    if (!was || rank[f.severity] > rank[was]) worst.set(f.service, f.severity);
  }
  const nodes = new Map<string, ElementDefinition>();
  const parents = new Map<string, string>();
  const parentOf = (agentsOf: string[], external: boolean) => {
    if (external) return "group:external";
    if (!group) return undefined;
    return agentsOf.length === 1 ? `group:agent:${agentsOf[0]}` : "group:agents:several";
  };
  const addNode = (id: string, name: string, kind: "service" | "external", agentsOf: string[]) => {
    if (nodes.has(id)) return;
    const parent = parentOf(agentsOf, kind === "external");
    if (parent)
      parents.set(
        parent,
        parent === "group:external" ? "External" : parent === "group:agents:several" ? "Several agents" : (agentsOf[0] ?? ""),
      );
    const service = kind === "service" ? byName.get(name) : undefined;
    nodes.set(id, {
      data: {
        id,
        label: name,
        kind,
        state: nodeState(service, agents),
        health: service?.health ?? "external",
        finding: worst.get(name) ?? "none",
        ...(parent ? { parent } : {}),
      },
    });
  };
  for (const s of data.services) addNode(`service:${s.name}`, s.name, "service", s.agents);
  for (const n of data.topology.nodes) addNode(n.id, n.name, n.kind, n.agents);
  const edges: ElementDefinition[] = [];
  for (const e of data.topology.edges) {
    if (!nodes.has(e.from)) addNode(e.from, e.from.replace(/^\w+:/, ""), e.from.startsWith("external:") ? "external" : "service", []);
    if (!nodes.has(e.to)) addNode(e.to, e.to.replace(/^\w+:/, ""), e.to.startsWith("external:") ? "external" : "service", []);
    edges.push({ data: { id: `${e.from}->${e.to}:${e.port}/${e.protocol}`, source: e.from, target: e.to, label: `${e.port}` } });
  }
  return [...[...parents].map(([id, label]) => ({ data: { id, label, kind: "group" } })), ...nodes.values(), ...edges];
}

/**
 * The live map's data and its graph library, asked for before the page first renders (the
 * index.html the build writes has already asked for both: these fetches take those answers).
 */
export function prefetchMap(): void {
  prefetch(MAP_REQUESTS);
  void import("../graph.js");
}

export function MapPage({ at, group }: { at: number | undefined; group: boolean }) {
  const container = useRef<HTMLDivElement>(null);
  const cy = useRef<Core | undefined>(undefined);
  const [selected, setSelected] = useState<string>();
  const window_ = at ? { since: at - HOUR, until: at } : {};
  const [edgesGate] = useState(() => every(10_000));

  // Four resources, each fetched again only on the messages that change it, so a health change
  // waits for the services list alone, not for the topology too.
  const servicesLive = useLive(
    () => api<{ services: MapService[] }>(SERVICES),
    [],
    (m) => m.type === "service",
  );
  const topology = useLive(
    () => api<MapTopology>(topologyOf(window_)),
    [at],
    // A past hour's graph does not change. New edges come with report batches, which every
    // agent sends every few seconds: those are gated.
    (m) => !at && ((m.type === "batch" && m.connections > 0 && edgesGate()) || (m.type === "service" && m.change === "listening")),
  );
  const findings = useLive(
    () => api<FindingsResponse>(FINDINGS),
    [],
    (m) => m.type === "finding",
  );
  const agents = useLive(
    () => api<{ agents: AgentView[] }>(AGENTS),
    [],
    (m) => m.type === "health",
  );
  const error = servicesLive.error ?? topology.error ?? findings.error ?? agents.error;
  const data = useMemo<MapData | undefined>(() => {
    if (!(servicesLive.data && topology.data && findings.data && agents.data)) return undefined;
    // For the bench: the four answers fetched and parsed (the graph is drawn from here).
    if (!performance.getEntriesByName("coral:map-data").length) performance.mark("coral:map-data");
    return { services: servicesLive.data.services, topology: topology.data, findings: findings.data.findings, agents: agents.data.agents };
  }, [servicesLive.data, topology.data, findings.data, agents.data]);

  const defs = useMemo(() => (data ? elements(data, group) : undefined), [data, group]);

  // The graph library loads while the data is fetched, not before.
  const [graph, setGraph] = useState<Graph>();
  useEffect(() => {
    void import("../graph.js").then(setGraph);
  }, []);

  // Layout effects: they run before the browser paints, so the graph is drawn in the frame that
  // paints the page rather than in one after it.
  useLayoutEffect(() => {
    if (!container.current || !graph) return;
    const instance = graph.createGraph(container.current, setSelected);
    cy.current = instance;
    return () => {
      graph.destroyGraph(instance);
      cy.current = undefined;
    };
  }, [graph]);

  // The list beside the graph waits for the graph's first paint: 300 entries rendered and laid
  // out are time the graph would wait for, and the list is not what one looks at first.
  const [drawn, setDrawn] = useState(false);
  useLayoutEffect(() => {
    if (cy.current && graph && defs) graph.drawGraph(cy.current, defs, () => setDrawn(true));
  }, [defs, graph]);

  const services = data?.services ?? [];
  const listed = drawn || error ? services : [];
  const byId = new Map((defs ?? []).map((d) => [d.data.id, d.data]));
  const chosen = selected ? byId.get(selected) : undefined;
  const chosenService = chosen?.kind === "service" ? services.find((s) => s.name === chosen.label) : undefined;
  // Counted from the edges drawn, so they are the map's window's (the past hour's, going back).
  const edges = data?.topology.edges ?? [];
  const calls = chosen ? edges.filter((e) => e.from === chosen.id).length : 0;
  const calledBy = chosen ? edges.filter((e) => e.to === chosen.id).length : 0;

  return (
    <section aria-labelledby="map-title">
      <div class="toolbar">
        <h1 id="map-title" style="margin:0">
          Map
        </h1>
        <label>
          <input
            type="checkbox"
            checked={group}
            onChange={(e) => {
              location.hash = href.map({ at, group: (e.target as HTMLInputElement).checked });
            }}
          />{" "}
          group by agent
        </label>
        <label>
          hour ending{" "}
          <input
            type="datetime-local"
            aria-label="Show the graph of the hour ending at"
            value={at ? new Date(at - new Date(at).getTimezoneOffset() * 60_000).toISOString().slice(0, 16) : ""}
            onChange={(e) => {
              const value = (e.target as HTMLInputElement).value;
              location.hash = href.map({ at: value ? new Date(value).getTime() : undefined, group });
            }}
          />
        </label>
        {at ? <a href={href.map({ group })}>back to now</a> : <span class="muted">the last hour, live</span>}
        <span class="legend" aria-hidden="true">
          <span class="ok">
            <span class="dot" />
            serving
          </span>
          <span class="down">
            <span class="dot" />
            not serving
          </span>
          <span class="unknown">
            <span class="dot" />
            no SDK
          </span>
          <span class="warning">◯ finding</span>
        </span>
      </div>
      {error && <p class="error">{error.message}</p>}
      {data && at && (
        <p class="muted">
          Dependencies seen {time(data.topology.window.from)} – {time(data.topology.window.to)}
        </p>
      )}
      <div class="map-layout">
        <div id="map" ref={container} role="img" aria-label={`Service map: ${services.length} services`} />
        <aside class="side" aria-label="Services">
          {chosen && (
            <div class="detail">
              <h2>{chosen.label}</h2>
              {chosenService ? (
                <>
                  <p>
                    <span class={chosenService.health}>{chosenService.health}</span> · {chosenService.instanceCount} instance(s) on{" "}
                    {chosenService.agents.join(", ")}
                  </p>
                  <p class="muted">versions: {chosenService.versions.join(", ") || "—"}</p>
                  <p>
                    calls {calls}, called by {calledBy}
                    {chosen.finding !== "none" && (
                      <>
                        {" "}
                        · <span class={chosen.finding}>{chosen.finding} finding</span>
                      </>
                    )}
                  </p>
                  <a href={href.service(chosenService.name)}>Open {chosenService.name}</a>
                </>
              ) : (
                <p class="muted">An address no agent knows.</p>
              )}
            </div>
          )}
          <h2>Services ({services.length})</h2>
          <ul>
            {listed.map((s) => {
              const d = byId.get(`service:${s.name}`);
              return (
                <li key={s.name} data-service={s.name} data-state={d?.state}>
                  <span class={d?.state === "down" ? "down" : d?.state === "ok" ? "ok" : "unknown"}>
                    <span class="dot" />
                  </span>
                  <a
                    href={href.service(s.name)}
                    onFocus={() => {
                      setSelected(`service:${s.name}`);
                      cy.current?.$(":selected").unselect();
                      cy.current?.getElementById(`service:${s.name}`).select();
                    }}
                  >
                    {s.name}
                  </a>
                  {d?.finding && d.finding !== "none" && <span class={`badge ${d.finding}`}>{d.finding}</span>}
                </li>
              );
            })}
          </ul>
        </aside>
      </div>
    </section>
  );
}
