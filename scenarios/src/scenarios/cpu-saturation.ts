import type { FaultScenario } from "../scenario.js";

/** A reindex that never ends, on a pool of four threads: the service takes every core of its two-core host. */
export default {
  name: "cpu-saturation",
  description: "inventory on host-b starts a reindex whose loop never ends, on four threads (the host has 2 cores)",
  via: "passive",
  expect: { service: "inventory", kind: "cpu-saturation" },
  warmupMs: 45_000,
  async setup({ lab, services }) {
    services.set(
      "inventory",
      lab.launch("host-b", { program: "inventory.mjs", as: "inventory", release: { port: 8082, threads: 4 }, supervised: true }),
    );
  },
  async fault({ services }) {
    if (!services.get("inventory")?.signal("SIGUSR2")) throw new Error("inventory is not running");
  },
  signals: [{ metric: "service.cpu.cores", service: "inventory", test: "above", value: 1.5 }],
} satisfies FaultScenario;
