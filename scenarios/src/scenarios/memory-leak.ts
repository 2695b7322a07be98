import type { FaultScenario } from "../scenario.js";

/**
 * A cache without eviction: while its traffic repeats the same pages its memory is flat; once
 * users browse ever more pages, it grows by about 2.5 MB/s, towards its cgroup's 1 GiB limit.
 */
export default {
  name: "memory-leak",
  description: "catalog on host-a caches every distinct page; traffic turns varied and its memory grows ~2.5 MB/s",
  via: "passive",
  expect: { service: "catalog", kind: "memory-leak" },
  warmupMs: 45_000,
  // The detector needs two minutes of growth (docs/findings.md, memory-leak `minSpanMs`).
  timeoutMs: 180_000,
  async setup({ lab, services }) {
    services.set(
      "catalog",
      lab.launch("host-a", {
        program: "catalog.mjs",
        as: "catalog",
        release: { port: 8081, pageBytes: 64 * 1024 },
        supervised: true,
        memoryLimitBytes: 1024 * 1024 * 1024,
      }),
    );
    lab.runTool("host-a", "traffic.mjs", ["127.0.0.1", "8081", "20", "same"]);
  },
  async fault({ lab }) {
    lab.runTool("host-a", "traffic.mjs", ["127.0.0.1", "8081", "40", "distinct"]);
  },
  signals: [{ metric: "service.memory.rss_bytes", service: "catalog", test: "grows", value: 50e6 }],
} satisfies FaultScenario;
