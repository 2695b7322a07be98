import type { FaultScenario } from "../scenario.js";

/** A service without the SDK gets a new script that fails at startup: a crash loop that began with a deploy. */
export default {
  name: "deploy-crash-passive",
  description: "api on host-a gets a new release that exits 2.5 s after each start; its supervisor restarts it",
  via: "passive",
  expect: { service: "api", kind: "bad-deploy" },
  warmupMs: 45_000,
  async setup({ lab, services }) {
    services.set(
      "api",
      lab.launch("host-a", { program: "web.mjs", as: "api", release: { version: "3.8.0", port: 8080 }, supervised: true }),
    );
  },
  async fault({ services }) {
    await services.get("api")?.deploy({ version: "3.9.0", port: 8080, failAtStartupAfterMs: 2_500 });
  },
  signals: [
    { event: "service.deployed", service: "api", source: "passive" },
    { event: "process.restarted", service: "api", atLeast: 2 },
  ],
} satisfies FaultScenario;
