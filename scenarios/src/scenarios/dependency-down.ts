import type { FaultScenario } from "../scenario.js";

/**
 * A database on host-a stops listening; orders (host-b) and billing (host-c), which query it
 * every second, fail three times in a row, exit, and crash-loop under their supervisors. The
 * root is the database, not the two services that show the failures.
 */
export default {
  name: "dependency-down",
  description: "db on host-a stops listening; orders (host-b) and billing (host-c), its callers, exit and restart",
  via: "passive",
  expect: { service: "db", kind: "dependency-down" },
  warmupMs: 45_000,
  async setup({ lab, services }) {
    const db = lab.hosts["host-a"].address;
    services.set("db", lab.launch("host-a", { program: "db.mjs", as: "db", release: { port: 5432 } }));
    services.set(
      "orders",
      lab.launch("host-b", { program: "caller.mjs", as: "orders", release: { port: 8083, dbHost: db, dbPort: 5432 }, supervised: true }),
    );
    services.set(
      "billing",
      lab.launch("host-c", { program: "caller.mjs", as: "billing", release: { port: 8084, dbHost: db, dbPort: 5432 }, supervised: true }),
    );
  },
  async fault({ services }) {
    if (!services.get("db")?.signal("SIGUSR2")) throw new Error("db is not running");
  },
  signals: [
    { event: "port.closed", service: "db" },
    { event: "process.exited", service: "orders" },
    { event: "process.exited", service: "billing" },
  ],
} satisfies FaultScenario;
