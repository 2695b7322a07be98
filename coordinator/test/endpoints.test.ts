/** Where the hub last saw each agent, as a restarted hub tries it first: never a relay's local socket. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { recordEndpoints } from "../src/mesh/endpoints.js";
import { openStore } from "../src/store/db.js";
import type { Observation } from "../src/store/observations.js";
import { agents } from "../src/store/schema.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function store() {
  const dir = mkdtempSync(join(tmpdir(), "coral-endpoints-"));
  dirs.push(dir);
  const db = openStore(join(dir, "coral.db"));
  db.insert(agents)
    .values({ name: "web", wireguardKey: "key-web", meshIp: "100.64.0.2", enrolledAt: 1, endpoint: "198.51.100.7:40001" })
    .run();
  db.insert(agents)
    .values({ name: "phone", wireguardKey: "key-phone", meshIp: "100.64.0.3", enrolledAt: 1, endpoint: "203.0.113.9:51000" })
    .run();
  return db;
}

const peer = (publicKey: string, endpoint: string) => ({
  publicKey,
  endpoint,
  allowedIps: [],
  latestHandshake: 1,
  rxBytes: 1,
  txBytes: 1,
  persistentKeepalive: 25,
});

describe("recordEndpoints", () => {
  it("keeps a direct endpoint that changed, as an event, and leaves a relayed agent's last direct address as it was", async () => {
    const db = store();
    const seen: Observation[] = [];
    const tunnel = {
      status: async () => ({
        publicKey: "hub",
        listenPort: 51820,
        peers: [peer("key-web", "198.51.100.7:40002"), peer("key-phone", "127.0.0.1:43001")],
      }),
    };
    await recordEndpoints(db, tunnel, (o) => {
      seen.push(o);
      return {} as never;
    });
    const rows = new Map(
      db
        .select({ name: agents.name, endpoint: agents.endpoint })
        .from(agents)
        .all()
        .map((a) => [a.name, a.endpoint]),
    );
    expect(rows).toEqual(
      new Map([
        ["web", "198.51.100.7:40002"],
        ["phone", "203.0.113.9:51000"],
      ]),
    );
    expect(seen.map((o) => [o.agent, o.attributes])).toEqual([["web", { from: "198.51.100.7:40001", to: "198.51.100.7:40002" }]]);

    // A relay socket the hub's end has forgotten (the agent idle for ten minutes) is not kept either.
    await recordEndpoints(db, tunnel);
    expect(
      db
        .select({ endpoint: agents.endpoint })
        .from(agents)
        .all()
        .map((a) => a.endpoint),
    ).toEqual(["198.51.100.7:40002", "203.0.113.9:51000"]);
    expect(seen).toHaveLength(1);
  });
});
