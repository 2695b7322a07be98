/**
 * The map's graph: cytoscape.js, loaded apart from the rest of the page (it is most of the
 * bundle). Drawn once per change of the graph's shape; a change of health or findings only
 * restyles the nodes in place. Laid out by dagre up to DAGRE_LIMIT elements, by the layered
 * layout in layered.ts beyond (docs/dashboard.md says why).
 */
import cytoscape, { type Core, type ElementDefinition } from "cytoscape";
import dagre from "cytoscape-dagre";
import { layered } from "./layered.js";

cytoscape.use(dagre);

declare global {
  interface Window {
    /** The map's graph, for tests and the bench (`coralMap.nodes()`). */
    coralMap?: Core;
  }
}

export const DAGRE_LIMIT = { nodes: 80, edges: 200 };

const shapes = new WeakMap<Core, string>();

function css(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

function style(): cytoscape.StylesheetJson {
  return [
    {
      selector: "node",
      style: {
        label: "data(label)",
        "font-size": 11,
        color: css("--text"),
        "text-valign": "bottom",
        "text-margin-y": 3,
        width: 18,
        height: 18,
        "background-color": css("--unknown"),
        "border-width": 0,
        // Zoomed out over hundreds of services, labels are unreadable and most of the drawing time.
        "min-zoomed-font-size": 7,
      },
    },
    { selector: 'node[state = "ok"]', style: { "background-color": css("--ok") } },
    { selector: 'node[state = "down"]', style: { "background-color": css("--bad") } },
    { selector: 'node[kind = "external"]', style: { shape: "round-rectangle", "background-color": css("--external") } },
    { selector: 'node[finding = "warning"]', style: { "border-width": 4, "border-color": css("--warn") } },
    { selector: 'node[finding = "critical"]', style: { "border-width": 4, "border-color": css("--bad") } },
    {
      selector: 'node[kind = "group"]',
      style: {
        "background-opacity": 0.06,
        "background-color": css("--text"),
        "border-width": 1,
        "border-color": css("--line"),
        "text-valign": "top",
        color: css("--muted"),
        shape: "round-rectangle",
      },
    },
    // Hundreds of services: plain lines (cytoscape's cheapest), direction shown by the layers (callers left).
    {
      selector: "edge.large",
      style: { "curve-style": "haystack", "haystack-radius": 0, "target-arrow-shape": "none", width: 0.8 },
    },
    { selector: "node:selected", style: { "border-width": 3, "border-color": css("--focus") } },
    {
      selector: "edge",
      style: {
        width: 1.2,
        "line-color": css("--line"),
        "target-arrow-color": css("--muted"),
        "target-arrow-shape": "triangle",
        "arrow-scale": 0.8,
        "curve-style": "straight",
      },
    },
  ];
}

/** The graph's shape: what needs a new layout when it changes (health and findings do not). */
function shapeOf(defs: ElementDefinition[]): string {
  return defs
    .map((d) => `${d.data.id}<${d.data.parent ?? ""}`)
    .sort()
    .join("|");
}

export function createGraph(container: HTMLElement, onSelect: (id: string) => void): Core {
  const instance = cytoscape({ container, style: style(), minZoom: 0.05, maxZoom: 3 });
  instance.on("tap", "node", (e) => {
    const id = e.target.id() as string;
    if (!id.startsWith("group:")) onSelect(id);
  });
  window.coralMap = instance;
  const restyle = new MutationObserver(() => instance.style(style()));
  restyle.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  instance.one("destroy", () => restyle.disconnect());
  return instance;
}

export function destroyGraph(instance: Core): void {
  instance.destroy();
  if (window.coralMap === instance) window.coralMap = undefined;
}

export function drawGraph(instance: Core, defs: ElementDefinition[]): void {
  const next = shapeOf(defs);
  if (next === shapes.get(instance)) {
    instance.batch(() => {
      for (const d of defs) if (d.data.id) instance.getElementById(d.data.id).data(d.data);
    });
    instance.container()?.setAttribute("data-updated", String(Date.now()));
    return;
  }
  shapes.set(instance, next);
  if (!performance.getEntriesByName("coral:map-data").length) performance.mark("coral:map-data");
  const nodes = defs.filter((d) => !d.data.source && d.data.kind !== "group");
  const edges = defs.filter((d) => d.data.source);
  const drawn = () =>
    requestAnimationFrame(() => {
      if (!performance.getEntriesByName("coral:map-drawn").length) performance.mark("coral:map-drawn");
      instance.container()?.setAttribute("data-drawn", String(instance.nodes().length));
    });
  if (nodes.length > DAGRE_LIMIT.nodes || edges.length > DAGRE_LIMIT.edges) {
    // Placed as they are added, and the view set from the positions: no layout pass, and no
    // bounding boxes (which measure every label) to fit.
    const positions = layered(
      nodes.map((d) => ({ id: d.data.id as string, group: d.data.parent as string | undefined, external: d.data.kind === "external" })),
      edges.map((d) => ({ source: d.data.source as string, target: d.data.target as string })),
    );
    instance.batch(() => {
      instance.elements().remove();
      instance.add(
        defs.map((d) =>
          positions.has(d.data.id as string)
            ? { ...d, position: positions.get(d.data.id as string) }
            : d.data.source
              ? { ...d, classes: "large" }
              : d,
        ),
      );
    });
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const p of positions.values()) {
      x0 = Math.min(x0, p.x);
      y0 = Math.min(y0, p.y);
      x1 = Math.max(x1, p.x);
      y1 = Math.max(y1, p.y);
    }
    const margin = 40;
    const zoom = Math.min(
      1.2,
      (instance.width() - 2 * margin) / Math.max(1, x1 - x0),
      (instance.height() - 2 * margin) / Math.max(1, y1 - y0),
    );
    instance.viewport({
      zoom,
      pan: { x: instance.width() / 2 - ((x0 + x1) / 2) * zoom, y: instance.height() / 2 - ((y0 + y1) / 2) * zoom },
    });
    drawn();
    return;
  }
  instance.batch(() => {
    instance.elements().remove();
    instance.add(defs);
  });
  const layout = instance.layout({ name: "dagre", rankDir: "LR", nodeSep: 14, rankSep: 90, animate: false } as cytoscape.LayoutOptions);
  layout.one("layoutstop", () => {
    instance.fit(undefined, 24);
    // A handful of services would fill the screen: no closer than a readable size.
    if (instance.zoom() > 1.2) {
      instance.zoom(1.2);
      instance.center();
    }
    drawn();
  });
  layout.run();
}
