import { SDK_PORTS } from "../lab.js";
import type { FaultScenario } from "../scenario.js";

/** An SDK service's payment provider turns flaky: its `payments` check fails and recovers every 6 s. */
export default {
  name: "health-flapping",
  description: "storefront (SDK) on host-c: its payments check starts failing and recovering every 6 s",
  via: "sdk",
  expect: { service: "storefront", kind: "health-failing" },
  warmupMs: 45_000,
  async setup({ lab, services }) {
    const release = { service: "storefront", version: "7.0.3", port: 8085, sdkPort: SDK_PORTS[1], flapEveryMs: 6_000 };
    services.set("storefront", lab.launch("host-c", { program: "sdk-web.mjs", as: "storefront", release, supervised: true }));
  },
  async fault({ services }) {
    if (!services.get("storefront")?.signal("SIGUSR2")) throw new Error("storefront is not running");
  },
  signals: [
    { event: "service.check_changed", service: "storefront", atLeast: 2 },
    { event: "service.health_changed", service: "storefront", atLeast: 2 },
  ],
} satisfies FaultScenario;
