/**
 * `?fields=` on `GET /v1/services` and `GET /v1/topology`: a reader that needs a few fields of
 * each item (the dashboard's map) gets only those, over a real SQLite store fed through ingest.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServicesResponse, TopologyResponse } from "@coral-mesh/sdk-proto";
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { afterEach, describe, expect, it } from "vitest";
import { prepareIngest } from "../src/rpc/ingest.js";
import { Bus } from "../src/store/bus.js";
import { openStore } from "../src/store/db.js";
import { agents } from "../src/store/schema.js";
import { modelApi } from "./fixtures/model-api.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const SERVICE = meshV1.SubjectKind.SUBJECT_KIND_SERVICE;
const T0 = Date.UTC(2027, 0, 15, 10);

const observed = (id: string, name: string, attributes: Record<string, string>): meshV1.Event => ({
  kind: "service.observed",
  timeUnixMs: T0,
  subject: { kind: SERVICE, id, name },
  attributes: { source: "passive", ...attributes },
  evidenceJson: "{}",
  source: "passive",
});

/** web-1's `api` calls `postgres` on db-1 and an outside API. */
async function mesh() {
  const dir = mkdtempSync(join(tmpdir(), "coral-fields-"));
  dirs.push(dir);
  const db = openStore(join(dir, "data", "coral.db"));
  const app = await modelApi(db, dir, () => T0 + 30_000);
  const ingest = prepareIngest(db, new Bus());
  db.insert(agents).values({ name: "web-1", wireguardKey: "key-web-1", meshIp: "100.64.0.2", enrolledAt: T0, addresses: [] }).run();
  db.insert(agents)
    .values({ name: "db-1", wireguardKey: "key-db-1", meshIp: "100.64.0.3", enrolledAt: T0, addresses: ["198.51.100.20"] })
    .run();
  const batch = (sequence: number, parts: Partial<meshV1.Batch>): meshV1.Batch => ({
    sequence,
    createdAtUnixMs: T0,
    droppedBefore: 0,
    events: [],
    metrics: [],
    connections: [],
    ...parts,
  });
  ingest("db-1", [batch(1, { events: [observed("exe:/usr/bin/postgres", "postgres", { listening: "0.0.0.0:5432" })] })], T0);
  const connection = (address: string, port: number, localPort: number): meshV1.Connection => ({
    protocol: "tcp",
    localAddress: "100.64.0.2",
    localPort,
    remoteAddress: address,
    remotePort: port,
    pid: 42,
    processName: "api",
    subject: { kind: SERVICE, id: "script:node /srv/api.js", name: "api" },
    observedAtUnixMs: T0 + 10_000,
    source: "passive",
  });
  ingest(
    "web-1",
    [
      batch(1, { events: [observed("script:node /srv/api.js", "api", {})] }),
      batch(2, { connections: [connection("198.51.100.20", 5432, 40001), connection("203.0.113.50", 443, 40002)] }),
    ],
    T0 + 10_000,
  );
  ingest.flush();
  const get = async (path: string) => {
    const response = await app.request(path);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  return { get };
}

describe("?fields=", () => {
  it("on GET /v1/services gives each service only the fields named, its name always", async () => {
    const { get } = await mesh();
    const full = (await get("/v1/services")).body as unknown as ServicesResponse;
    const brief = await get("/v1/services?fields=health,runningCount,agents");
    expect(brief.status).toBe(200);
    expect(brief.body).toEqual({
      services: full.services.map((s) => ({ name: s.name, runningCount: s.runningCount, agents: s.agents, health: s.health })),
    });
    expect(brief.body.services).toEqual([
      { name: "api", runningCount: 1, agents: ["web-1"], health: "unknown" },
      { name: "postgres", runningCount: 1, agents: ["db-1"], health: "unknown" },
    ]);
    // With the instances asked for too, they come beside the fields named.
    const withInstances = (await get("/v1/services?fields=name&instances=true")).body as unknown as ServicesResponse;
    expect(withInstances.services.map((s) => [s.name, s.instances?.length, s.dependencies])).toEqual([
      ["api", 1, undefined],
      ["postgres", 1, undefined],
    ]);
  });

  it("on GET /v1/topology gives each edge only the fields named, from and to always, and every node whole", async () => {
    const { get } = await mesh();
    const full = (await get("/v1/topology")).body as unknown as TopologyResponse;
    expect(full.edges).toHaveLength(2);
    const brief = await get("/v1/topology?fields=port,protocol");
    expect(brief.status).toBe(200);
    expect(brief.body).toEqual({
      window: full.window,
      nodes: full.nodes,
      edges: [
        { from: "service:api", to: "external:203.0.113.50:443", port: 443, protocol: "tcp" },
        { from: "service:api", to: "service:postgres", port: 5432, protocol: "tcp" },
      ],
    });
    // A window and fields together.
    const window = await get(`/v1/topology?since=${T0}&until=${T0 + 60_000}&fields=observations`);
    expect(window.body.edges).toEqual([
      { from: "service:api", to: "external:203.0.113.50:443", observations: 1 },
      { from: "service:api", to: "service:postgres", observations: 1 },
    ]);
  });

  it("refuses a field the item does not have, or none, with invalid_query naming the fields it takes", async () => {
    const { get } = await mesh();
    for (const path of [
      "/v1/services?fields=name,password",
      "/v1/services?fields=",
      "/v1/topology?fields=hours,nodes",
      "/v1/topology?fields=,",
    ]) {
      const answer = await get(path);
      expect(answer.status, path).toBe(400);
      expect(answer.body.code, path).toBe("invalid_query");
      expect(answer.body.message, path).toMatch(/^fields: (no field [a-z]+; )?name one or more of .+, comma-separated\.$/);
    }
    const unknown = await get("/v1/services?fields=name,password");
    expect(unknown.body.message).toBe(
      "fields: no field password; name one or more of name, instanceCount, runningCount, agents, versions, ports, source, health, dependencies, dependents, firstSeen, lastSeen, comma-separated.",
    );
    expect((await get("/v1/topology?fields=hours,nodes")).body.message).toMatch(/^fields: no field nodes; name one or more of from, to, /);
  });
});
