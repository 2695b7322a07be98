import { SDK_PORTS } from "../lab.js";
import type { ControlScenario } from "../scenario.js";

/** Two deploys that go fine: search (SDK) to 5.3.0 and accounts (no SDK) to a new script, both restarted once. */
export default {
  name: "control-deploys",
  description: "search (SDK) on host-a and accounts on host-b are deployed with new releases that run fine",
  via: "sdk",
  control: true,
  watches: { services: ["search", "accounts"], agents: ["host-a", "host-b"] },
  warmupMs: 30_000,
  windowMs: 120_000,
  async setup({ lab, services }) {
    services.set(
      "search",
      lab.launch("host-a", {
        program: "sdk-web.mjs",
        as: "search",
        release: { service: "search", version: "5.2.0", port: 8088, sdkPort: SDK_PORTS[2] },
        supervised: true,
      }),
    );
    services.set(
      "accounts",
      lab.launch("host-b", { program: "web.mjs", as: "accounts", release: { version: "1.0.0", port: 8089 }, supervised: true }),
    );
  },
  async act({ services }) {
    await services.get("search")?.deploy({ service: "search", version: "5.3.0", port: 8088, sdkPort: SDK_PORTS[2] });
    await services.get("accounts")?.deploy({ version: "1.1.0", port: 8089 });
  },
  signals: [
    { event: "service.deployed", service: "search", source: "sdk" },
    { event: "service.deployed", service: "accounts", source: "passive" },
  ],
} satisfies ControlScenario;
