import type { ControlScenario } from "../scenario.js";

/** A mailer keeps four workers; each exits normally after about 20 s and is replaced at once. */
export default {
  name: "control-worker-pool",
  description: "mailer on host-b keeps 4 sender workers, each retiring normally after ~20 s and replaced",
  via: "passive",
  control: true,
  watches: { services: ["mailer", "sender"], agents: ["host-b"] },
  warmupMs: 0,
  windowMs: 130_000,
  async setup({ lab, services }) {
    services.set(
      "mailer",
      lab.launch("host-b", {
        program: "mailer.mjs",
        as: "mailer",
        release: { port: 8090, size: 4, lifetimeMs: 20_000 },
        with: ["sender.mjs"],
      }),
    );
  },
  signals: [{ event: "process.exited", service: "sender", atLeast: 3 }],
} satisfies ControlScenario;
