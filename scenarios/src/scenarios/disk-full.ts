import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { FaultScenario } from "../scenario.js";

/** Uploads fill host-c's 64 MiB data volume at 2 MB/s: the host's disk, not a service, is the finding. */
export default {
  name: "disk-full",
  description: "uploads on host-c stores files on its 64 MiB data volume at 2 MB/s until the volume is full",
  via: "passive",
  expect: { service: null, agent: "host-c", kind: "host-pressure" },
  warmupMs: 45_000,
  async setup({ lab, services }) {
    const dataDir = lab.hosts["host-c"].data;
    services.set(
      "uploads",
      lab.launch("host-c", { program: "uploads.mjs", as: "uploads", release: { port: 8087, dataDir }, supervised: true }),
    );
  },
  async fault({ services }) {
    if (!services.get("uploads")?.signal("SIGUSR2")) throw new Error("uploads is not running");
  },
  async teardown({ lab }) {
    const dataDir = lab.hosts["host-c"].data as string;
    for (const file of readdirSync(dataDir)) rmSync(join(dataDir, file), { force: true });
  },
  signals: [{ disk: "host-c", usedAbove: 0.95 }],
} satisfies FaultScenario;
