import type { FaultScenario } from "../scenario.js";

/** An import holds everything in memory: the kernel OOM-kills the service at its cgroup's 160 MiB limit. */
export default {
  name: "oom-kill",
  description: "ledger on host-b (memory limit 160 MiB) imports statements into memory, 20 MB/s, until the OOM killer stops it",
  via: "passive",
  expect: { service: "ledger", kind: "oom-kill" },
  warmupMs: 45_000,
  async setup({ lab, services }) {
    services.set(
      "ledger",
      lab.launch("host-b", {
        program: "ledger.mjs",
        as: "ledger",
        release: { port: 8086 },
        supervised: true,
        memoryLimitBytes: 160 * 1024 * 1024,
      }),
    );
  },
  async fault({ services }) {
    if (!services.get("ledger")?.signal("SIGUSR2")) throw new Error("ledger is not running");
  },
  signals: [{ event: "service.oom_killed", service: "ledger" }],
} satisfies FaultScenario;
