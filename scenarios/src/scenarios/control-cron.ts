import type { ControlScenario } from "../scenario.js";

/** A scheduler runs a 4 s export every minute, as cron does: a short job at a fixed cadence. */
export default {
  name: "control-cron",
  description: "reports on host-c starts its export job every minute; each run takes 4 s and exits 0",
  via: "passive",
  control: true,
  watches: { services: ["reports", "export"], agents: ["host-c"] },
  warmupMs: 0,
  windowMs: 150_000,
  async setup({ lab, services }) {
    services.set(
      "reports",
      lab.launch("host-c", {
        program: "scheduler.mjs",
        as: "reports",
        release: { everyMs: 60_000, job: "export.mjs" },
        with: ["export.mjs"],
      }),
    );
  },
  signals: [{ event: "process.started", service: "export", atLeast: 2 }],
} satisfies ControlScenario;
