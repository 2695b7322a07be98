import { SDK_PORTS } from "../lab.js";
import type { FaultScenario } from "../scenario.js";

/** An SDK service is deployed with a release that fails at startup: its supervisor restarts it again and again. */
export default {
  name: "deploy-crash-sdk",
  description: "checkout (SDK, 2.4.0) on host-b is deployed as 2.4.1, which exits 2.5 s after each start",
  via: "sdk",
  expect: { service: "checkout", kind: "bad-deploy" },
  warmupMs: 45_000,
  async setup({ lab, services }) {
    const release = { service: "checkout", version: "2.4.0", port: 8080, sdkPort: SDK_PORTS[0] };
    services.set("checkout", lab.launch("host-b", { program: "sdk-web.mjs", as: "checkout", release, supervised: true }));
  },
  async fault({ services }) {
    await services
      .get("checkout")
      ?.deploy({ service: "checkout", version: "2.4.1", port: 8080, sdkPort: SDK_PORTS[0], failAtStartupAfterMs: 2_500 });
  },
  signals: [
    { event: "service.deployed", service: "checkout", source: "sdk" },
    { event: "process.restarted", service: "checkout", atLeast: 2 },
  ],
} satisfies FaultScenario;
