import { describe, expect, it } from "vitest";
import { layered } from "../src/layered.js";
import { largeMesh } from "./harness.js";

describe("the layered layout", () => {
  it("puts callers left of what they call, externals last, and no two nodes in one place", () => {
    const nodes = [{ id: "web" }, { id: "api" }, { id: "db" }, { id: "cache" }, { id: "ext", external: true }];
    const edges = [
      { source: "web", target: "api" },
      { source: "api", target: "db" },
      { source: "api", target: "cache" },
      { source: "web", target: "ext" },
    ];
    const at = layered(nodes, edges);
    const x = (id: string) => at.get(id)?.x ?? Number.NaN;
    expect(x("web")).toBeLessThan(x("api"));
    expect(x("api")).toBeLessThan(x("db"));
    expect(x("db")).toBe(x("cache"));
    expect(x("ext")).toBeGreaterThan(x("db"));
    expect(new Set([...at.values()].map((p) => `${p.x},${p.y}`)).size).toBe(nodes.length);
  });

  it("lays out a cycle, and 300 services with 1,000 edges quickly", () => {
    const cycle = layered(
      [{ id: "a" }, { id: "b" }],
      [
        { source: "a", target: "b" },
        { source: "b", target: "a" },
      ],
    );
    expect(cycle.size).toBe(2);
    const mesh = largeMesh(300, 1_000);
    const started = performance.now();
    const at = layered(
      mesh.services.map((s) => ({ id: s.name })),
      mesh.edges.map(([source, target]) => ({ source, target })),
    );
    const took = performance.now() - started;
    expect(at.size).toBe(300);
    for (const [from, to] of mesh.edges) expect((at.get(from)?.x ?? 0) < (at.get(to)?.x ?? 0), `${from} → ${to}`).toBe(true);
    // Generous for a busy machine: it takes a few milliseconds.
    expect(took).toBeLessThan(1_000);
  });
});
