/**
 * The map's graph: cytoscape.js, loaded apart from the rest of the page (it is most of the
 * bundle). Drawn once per change of the graph's shape; a change of health or findings only
 * restyles the nodes in place. Laid out by dagre up to DAGRE_LIMIT elements, by the layered
 * layout in layered.ts beyond (docs/dashboard.md says why).
 */
import cytoscape, { type Core, type ElementDefinition } from "cytoscape";
import { layered } from "./layered.js";

/**
 * dagre (with the parts of graphlib and lodash it brings) is a chunk of its own, loaded the first
 * time a small graph is drawn: a large one does not use it, and evaluating it is time the first
 * paint of a large one would wait for.
 */
let dagreLoaded: Promise<void> | undefined;
function withDagre(): Promise<void> {
  dagreLoaded ??= import("cytoscape-dagre").then((dagre) => {
    cytoscape.use(dagre.default);
  });
  return dagreLoaded;
}

declare global {
  interface Window {
    /** The map's graph, for tests and the bench (`coralMap.nodes()`). */
    coralMap?: Core;
  }
}

export const DAGRE_LIMIT = { nodes: 80, edges: 200 };

const shapes = new WeakMap<Core, string>();
/** The elements each graph was last asked to draw. */
const latest = new WeakMap<Core, ElementDefinition[]>();

function css(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/**
 * Element styles, as few properties per element as the look allows: cytoscape applies each one
 * to each element in turn, and at 1,300 elements that is most of the first frame. What a
 * property's default already says (haystack lines without arrows, no border) is left out.
 */
function style(): cytoscape.StylesheetJson {
  return [
    {
      selector: "node",
      style: { width: 18, height: 18, "background-color": css("--unknown") },
    },
    // Labels only where they are drawn (see `readable`): their sizes and boxes are a good part of the first frame.
    {
      selector: "node.named",
      style: {
        label: "data(label)",
        "font-size": FONT_SIZE,
        color: css("--text"),
        "text-valign": "bottom",
        "text-margin-y": 3,
        // Zoomed out over hundreds of services, labels are unreadable and most of the drawing time.
        "min-zoomed-font-size": MIN_FONT_SIZE,
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
        shape: "round-rectangle",
      },
    },
    { selector: 'node.named[kind = "group"]', style: { "text-valign": "top", color: css("--muted") } },
    { selector: "node:selected", style: { "border-width": 3, "border-color": css("--focus") } },
    // Hundreds of services: plain lines (cytoscape's cheapest, its default), direction shown by the layers (callers left).
    { selector: "edge", style: { width: 0.8, "line-color": css("--line") } },
    {
      selector: "edge.arrow",
      style: {
        width: 1.2,
        "target-arrow-color": css("--muted"),
        "target-arrow-shape": "triangle",
        "arrow-scale": 0.8,
        "curve-style": "straight",
      },
    },
  ];
}

const FONT_SIZE = 11;
const MIN_FONT_SIZE = 7;

/**
 * Whether cytoscape draws an 11 px label at this zoom over `min-zoomed-font-size`: it scales
 * the font by the texture level, 2 to the power of ceil(log2(zoom × pixel ratio)), and draws
 * it when that reaches the minimum. Below, a node without its label paints the same pixels.
 */
export function readable(zoom: number, pixelRatio = window.devicePixelRatio || 1): boolean {
  return FONT_SIZE * 2 ** Math.ceil(Math.log2(zoom * pixelRatio)) >= MIN_FONT_SIZE;
}

/** Labels on or off with the zoom, so they appear where cytoscape would draw them. */
const labelled = new WeakMap<Core, boolean>();
function label(instance: Core, on: boolean): void {
  if (labelled.get(instance) === on) return;
  labelled.set(instance, on);
  instance.batch(() => {
    if (on) instance.nodes().addClass("named");
    else instance.nodes().removeClass("named");
  });
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
  instance.on("zoom", () => label(instance, readable(instance.zoom())));
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

/** Draws `defs`; `onDrawn` is called in the frame after the first paint of a new shape. */
export function drawGraph(instance: Core, defs: ElementDefinition[], onDrawn?: () => void): void {
  latest.set(instance, defs);
  const next = shapeOf(defs);
  if (next === shapes.get(instance)) {
    instance.batch(() => {
      for (const d of defs) if (d.data.id) instance.getElementById(d.data.id).data(d.data);
    });
    instance.container()?.setAttribute("data-updated", String(Date.now()));
    return;
  }
  shapes.set(instance, next);
  const nodes = defs.filter((d) => !d.data.source && d.data.kind !== "group");
  const edges = defs.filter((d) => d.data.source);
  const drawn = () =>
    requestAnimationFrame(() => {
      if (!performance.getEntriesByName("coral:map-drawn").length) performance.mark("coral:map-drawn");
      instance.container()?.setAttribute("data-drawn", String(instance.nodes().length));
      onDrawn?.();
    });
  if (nodes.length > DAGRE_LIMIT.nodes || edges.length > DAGRE_LIMIT.edges) {
    // Placed as they are added, and the view set from the positions before: no layout pass, no
    // bounding boxes (which measure every label) to fit, and labels only if the zoom shows them.
    const positions = layered(
      nodes.map((d) => ({ id: d.data.id as string, group: d.data.parent as string | undefined, external: d.data.kind === "external" })),
      edges.map((d) => ({ source: d.data.source as string, target: d.data.target as string })),
    );
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
    const named = readable(zoom);
    labelled.set(instance, named);
    instance.batch(() => {
      instance.elements().remove();
      instance.viewport({
        zoom,
        pan: { x: instance.width() / 2 - ((x0 + x1) / 2) * zoom, y: instance.height() / 2 - ((y0 + y1) / 2) * zoom },
      });
      instance.add(
        defs.map((d) => {
          if (d.data.source) return d;
          const position = positions.get(d.data.id as string);
          return { ...d, ...(position ? { position } : {}), ...(named ? { classes: "named" } : {}) };
        }),
      );
    });
    drawn();
    return;
  }
  labelled.set(instance, true);
  void withDagre().then(() => {
    // Drawn again, or gone, while dagre loaded: that drawing lays itself out.
    if (instance.destroyed() || shapes.get(instance) !== next) return;
    // Added only now, with the layout straight after (never drawn piled where they are added),
    // and the latest data, should a change of health have come while dagre loaded.
    instance.batch(() => {
      instance.elements().remove();
      instance.add((latest.get(instance) ?? defs).map((d) => ({ ...d, classes: d.data.source ? "arrow" : "named" })));
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
  });
}
