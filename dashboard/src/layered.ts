/**
 * A layered layout for large graphs, in linear-ish time: callers left of what they call.
 * Cycles are broken where a depth-first walk meets them; each node's layer is its longest
 * path from a node nothing calls; externals take a layer of their own at the right; within a
 * layer, nodes are ordered by a few sweeps of the barycenter heuristic (the mean position
 * of their neighbours in the layer before), which untangles most crossings. Dagre does the
 * same with network-simplex ranking and exact crossing counts, which is nicer for a few
 * dozen services and far too slow for hundreds (docs/dashboard.md has the figures).
 */
export interface LayoutNode {
  id: string;
  /** Kept together within a layer (the agent, when grouping). */
  group?: string | undefined;
  external?: boolean;
}

export function layered(
  nodes: LayoutNode[],
  edges: Array<{ source: string; target: string }>,
  spacing = { x: 170, y: 42 },
): Map<string, { x: number; y: number }> {
  const ids = nodes.map((n) => n.id);
  const out = new Map<string, string[]>(ids.map((id) => [id, []]));
  const into = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of edges) {
    if (e.source === e.target || !out.has(e.source) || !out.has(e.target)) continue;
    out.get(e.source)?.push(e.target);
  }
  // Break cycles: drop the edges a depth-first walk finds going back up its path.
  const state = new Map<string, 1 | 2>();
  const forward = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const start of ids) {
    if (state.has(start)) continue;
    const stack: Array<[string, number]> = [[start, 0]];
    state.set(start, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [string, number];
      const [v, i] = top;
      const next = out.get(v)?.[i];
      if (next === undefined) {
        state.set(v, 2);
        stack.pop();
        continue;
      }
      top[1] = i + 1;
      const s = state.get(next);
      if (s === 1) continue;
      forward.get(v)?.push(next);
      into.get(next)?.push(v);
      if (s === undefined) {
        state.set(next, 1);
        stack.push([next, 0]);
      }
    }
  }
  // Longest path from the sources, in topological order.
  const rank = new Map<string, number>();
  const pending = new Map(ids.map((id) => [id, into.get(id)?.length ?? 0]));
  const queue = ids.filter((id) => pending.get(id) === 0);
  for (const id of queue) rank.set(id, 0);
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q] as string;
    for (const w of forward.get(v) ?? []) {
      rank.set(w, Math.max(rank.get(w) ?? 0, (rank.get(v) ?? 0) + 1));
      const left = (pending.get(w) ?? 1) - 1;
      pending.set(w, left);
      if (left === 0) queue.push(w);
    }
  }
  const byId = new Map(nodes.map((n) => [n.id, n]));
  let last = 0;
  for (const n of nodes) if (!n.external) last = Math.max(last, rank.get(n.id) ?? 0);
  for (const n of nodes) if (n.external) rank.set(n.id, last + 1);

  const layers: string[][] = [];
  for (const id of ids) {
    const r = rank.get(id) ?? 0;
    const layer = layers[r] ?? [];
    layer.push(id);
    layers[r] = layer;
  }
  const position = new Map<string, number>();
  const place = (layer: string[]) => {
    for (const [i, id] of layer.entries()) position.set(id, i);
  };
  for (const layer of layers) if (layer) place(layer);
  const group = (id: string) => byId.get(id)?.group ?? "";
  const sweep = (layer: string[], neighbours: Map<string, string[]>) => {
    const score = new Map<string, number>();
    for (const id of layer) {
      const ns = neighbours.get(id) ?? [];
      score.set(id, ns.length === 0 ? (position.get(id) ?? 0) : ns.reduce((sum, n) => sum + (position.get(n) ?? 0), 0) / ns.length);
    }
    layer.sort((a, b) => (group(a) < group(b) ? -1 : group(a) > group(b) ? 1 : (score.get(a) ?? 0) - (score.get(b) ?? 0)));
    place(layer);
  };
  for (let round = 0; round < 4; round++) {
    for (let r = 1; r < layers.length; r++) if (layers[r]) sweep(layers[r] as string[], into);
    for (let r = layers.length - 2; r >= 0; r--) if (layers[r]) sweep(layers[r] as string[], forward);
  }
  const positions = new Map<string, { x: number; y: number }>();
  layers.forEach((layer, r) => {
    if (!layer) return;
    const top = -((layer.length - 1) * spacing.y) / 2;
    for (const [i, id] of layer.entries()) positions.set(id, { x: r * spacing.x, y: top + i * spacing.y });
  });
  return positions;
}
