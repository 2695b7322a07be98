import type { ControlScenario } from "../scenario.js";

/** A scheduled rollup runs on two threads at full speed for 15 s every 40 s: heavy CPU, on schedule. */
export default {
  name: "control-batch",
  description: "analytics on host-a runs its rollup batch every 40 s: two threads at full speed for 15 s",
  via: "passive",
  control: true,
  watches: { services: ["analytics", "rollup"], agents: ["host-a"] },
  warmupMs: 0,
  windowMs: 130_000,
  async setup({ lab, services }) {
    services.set(
      "analytics",
      lab.launch("host-a", {
        program: "scheduler.mjs",
        as: "analytics",
        release: { everyMs: 40_000, job: "rollup.mjs", args: ["2", "15"] },
        with: ["rollup.mjs"],
      }),
    );
  },
  signals: [{ metric: "service.cpu.cores", service: "rollup", test: "above", value: 1 }],
} satisfies ControlScenario;
