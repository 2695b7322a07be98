import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningKeyPair, meshIdFor, type SigningKeyPair, verifyRelayTicket } from "@coral-mesh/sdk-proto";
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { credentials, status as GrpcStatus, Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentHealth } from "../src/mesh/health.js";
import { RelayTickets } from "../src/mesh/relay-tickets.js";
import { peerAddress, startAgentService } from "../src/rpc/agent-service.js";
import { type Ingest, prepareIngest } from "../src/rpc/ingest.js";
import { openStore, type Store } from "../src/store/db.js";
import { observer } from "../src/store/observations.js";
import { agents, auditLog, events, services, topologyEdges } from "../src/store/schema.js";

describe("the agent service over real gRPC", () => {
  let dir: string;
  let db: Store;
  let service: { port: number; close(): Promise<void> };
  let client: meshV1.AgentServiceClient;
  let ingest: Ingest;
  let signing: SigningKeyPair;
  const WEB_KEY = Buffer.alloc(32, 7).toString("base64");

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "coral-rpc-"));
    db = openStore(join(dir, "coral.db"));
    // On loopback every call comes from 127.0.0.1: here that is web-1's mesh address.
    db.insert(agents).values({ name: "web-1", wireguardKey: WEB_KEY, meshIp: "127.0.0.1", enrolledAt: 1 }).run();
    ingest = prepareIngest(db);
    signing = await generateSigningKeyPair();
    service = await startAgentService({
      db,
      heartbeatIntervalMs: 10_000,
      host: "127.0.0.1",
      port: 0,
      observe: observer(db),
      ingest,
      relayTickets: new RelayTickets(signing),
    });
    client = new meshV1.AgentServiceClient(`127.0.0.1:${service.port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await service?.close();
    db?.$client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = <Req, Res>(
    fn: (req: Req, md: Metadata, opts: object, cb: (e: ServiceError | null, r: Res) => void) => unknown,
    req: Req,
    claim?: string,
  ): Promise<Res> => {
    const md = new Metadata();
    if (claim) md.set("coral-agent", claim);
    return new Promise((resolve, reject) =>
      fn.call(client, req, md, { deadline: Date.now() + 3_000 }, (e, r) => (e ? reject(e) : resolve(r))),
    );
  };
  const batch = (sequence: number): meshV1.Batch => ({
    sequence,
    createdAtUnixMs: 1_000 + sequence,
    droppedBefore: 0,
    events: [
      {
        kind: "process.started",
        timeUnixMs: 1_000 + sequence,
        subject: { kind: meshV1.SubjectKind.SUBJECT_KIND_PROCESS, id: `pid:${sequence}`, name: "node" },
        attributes: { pid: String(sequence) },
        evidenceJson: "{}",
        source: "passive",
      },
    ],
    metrics: [{ name: "cpu", value: 0.5, timeUnixMs: 1_000, subject: undefined, labels: {}, source: "" }],
    connections: [
      {
        protocol: "tcp",
        localAddress: "10.0.0.1",
        localPort: 40000,
        remoteAddress: "198.51.100.9",
        remotePort: 5432,
        pid: 7,
        processName: "api",
        subject: { kind: 2, id: "api", name: "api" },
        observedAtUnixMs: 1_000 + sequence,
        source: "passive",
      },
    ],
  });

  const REGISTER: meshV1.RegisterRequest = {
    agentName: "web-1",
    agentVersion: "0.1.0",
    hostname: "web-1.lab",
    os: "linux",
    arch: "x64",
    plugins: [],
    runId: "",
    sentAtUnixMs: 0,
    addresses: [],
  };

  it("registers the agent the call comes from", async () => {
    const response = await call(client.register, REGISTER);
    expect(response).toMatchObject({ heartbeatIntervalMs: 10_000, lastAckedSequence: 0 });
  });

  it("gives the agent a relay ticket for its own key at register, and none again in a heartbeat the same day", async () => {
    const registered = await call<meshV1.RegisterRequest, meshV1.RegisterResponse>(client.register, REGISTER);
    const check = await verifyRelayTicket(registered.relayTicket, await meshIdFor(signing.publicKey), Date.now());
    expect(check).toMatchObject({ ok: true, ticket: { peer: WEB_KEY } });
    if (check.ok) expect(check.ticket.expiresAt - Date.now()).toBeGreaterThan(5 * 86_400_000);
    const beat = await call<meshV1.HeartbeatRequest, meshV1.HeartbeatResponse>(client.heartbeat, {
      sentAtUnixMs: Date.now(),
      plugins: [],
      runId: "",
    });
    expect(beat.relayTicket).toBe("");
  });

  it("stores each batch once however often it is sent, and acknowledges retries too", async () => {
    expect((await call(client.report, { sentAtUnixMs: 0, batches: [batch(1), batch(2)] })).ackedSequences).toEqual([1, 2]);
    expect((await call(client.report, { sentAtUnixMs: 0, batches: [batch(2), batch(3)] })).ackedSequences).toEqual([2, 3]);
    expect(
      db
        .select()
        .from(events)
        .all()
        .map((e) => e.sequence),
    ).toEqual([1, 2, 3]);
    ingest.flush();
    const [edge] = db.select().from(topologyEdges).all();
    expect(edge).toMatchObject({ fromService: "api", toAddress: "198.51.100.9", toPort: 5432, observations: 3, lastSeenAt: 1_003 });
    expect(
      (
        await call(client.register, {
          agentName: "web-1",
          agentVersion: "0.1.0",
          hostname: "",
          os: "",
          arch: "",
          plugins: [],
          runId: "",
          sentAtUnixMs: 0,
          addresses: [],
        })
      ).lastAckedSequence,
    ).toBe(3);
  });

  it("keeps the service inventory from service.observed events, the SDK's word winning", async () => {
    const event = (kind: string, attributes: Record<string, string>, time: number) => ({
      kind,
      timeUnixMs: time,
      subject: {
        kind: meshV1.SubjectKind.SUBJECT_KIND_SERVICE,
        id: "script:node /srv/shop.js",
        name: kind === "service.observed" && attributes.source === "sdk" ? "example-shop" : "shop",
      },
      attributes,
      evidenceJson: "{}",
      source: "",
    });
    const report = (sequence: number, events: ReturnType<typeof event>[]) =>
      call(client.report, {
        sentAtUnixMs: 0,
        batches: [{ sequence, createdAtUnixMs: 1, droppedBefore: 0, events, metrics: [], connections: [] }],
      });
    await report(100, [event("service.observed", { source: "passive", exe: "/usr/bin/node" }, 5_000)]);
    await report(101, [
      event("service.observed", { source: "sdk", version: "1.0.0" }, 6_000),
      event("service.health_changed", { from: "unknown", to: "serving" }, 6_001),
    ]);
    await report(102, [event("service.observed", { source: "passive", exe: "/usr/bin/node" }, 7_000)]);
    expect(db.select().from(services).all()).toEqual([
      expect.objectContaining({
        agentName: "web-1",
        key: "script:node /srv/shop.js",
        name: "example-shop",
        version: "1.0.0",
        source: "sdk",
        health: "serving",
        firstSeenAt: 5_000,
        lastSeenAt: 7_000,
      }),
    ]);
  });

  it("keeps the host's addresses and the agent's clock offset, and notes plugins failing and recovering", async () => {
    const plugins = (status: meshV1.PluginStatus, lastError = "") => [{ name: "sdk", version: "0.1.0", status, lastError, sinceUnixMs: 1 }];
    await call(client.register, {
      agentName: "web-1",
      agentVersion: "0.1.0",
      hostname: "web-1.lab",
      os: "linux",
      arch: "x64",
      plugins: plugins(meshV1.PluginStatus.PLUGIN_STATUS_RUNNING),
      runId: "",
      // The agent's clock runs 5 s ahead of this one.
      sentAtUnixMs: Date.now() + 5_000,
      addresses: ["198.51.100.10", "2001:db8::10", "not an address", "198.51.100.10"],
    });
    const row = db.select().from(agents).all()[0];
    expect(row?.addresses).toEqual(["198.51.100.10", "2001:db8::10"]);
    expect(row?.clockOffsetMs).toBeGreaterThan(4_000);
    expect(row?.clockOffsetMs).toBeLessThanOrEqual(5_000);
    const beat = (status: meshV1.PluginStatus, lastError = "") =>
      call(client.heartbeat, { sentAtUnixMs: Date.now(), plugins: plugins(status, lastError), runId: "" });
    await beat(meshV1.PluginStatus.PLUGIN_STATUS_FAILED, "probe refused");
    await beat(meshV1.PluginStatus.PLUGIN_STATUS_FAILED, "probe refused");
    await beat(meshV1.PluginStatus.PLUGIN_STATUS_RUNNING);
    const noted = db
      .select()
      .from(events)
      .all()
      .filter((e) => e.source === "coordinator")
      .map((e) => [e.kind, JSON.parse(e.attributes)]);
    expect(noted).toEqual([
      ["plugin.failed", { plugin: "sdk", from: "running", to: "failed", error: "probe refused" }],
      ["plugin.recovered", { plugin: "sdk", from: "failed", to: "running" }],
    ]);
  });

  it("records heartbeats and plugin states, from which health follows", async () => {
    await call(client.heartbeat, {
      sentAtUnixMs: Date.now(),
      plugins: [
        { name: "passive", version: "0.1.0", status: meshV1.PluginStatus.PLUGIN_STATUS_DEGRADED, lastError: "EACCES", sinceUnixMs: 1 },
      ],
      runId: "",
    });
    const row = db.select().from(agents).all()[0];
    const plugins = JSON.parse(row?.plugins ?? "[]") as Array<{ name: string; state: "degraded" }>;
    expect(plugins).toEqual([expect.objectContaining({ name: "passive", state: "degraded", lastError: "EACCES" })]);
    expect(agentHealth(row?.lastHeartbeatAt ?? null, plugins, 10_000, Date.now())).toBe("degraded");
  });

  it("refuses a heartbeat of an earlier run that arrives after a newer register, and keeps the newer run's state", async () => {
    const plugin = (status: meshV1.PluginStatus) => [{ name: "passive", version: "0.1.0", status, lastError: "", sinceUnixMs: 1 }];
    const state = () => (JSON.parse(db.select().from(agents).all()[0]?.plugins ?? "[]") as Array<{ state: string }>)[0]?.state;
    const register = (runId: string) =>
      call(client.register, {
        agentName: "web-1",
        agentVersion: "0.1.0",
        hostname: "",
        os: "",
        arch: "",
        plugins: plugin(meshV1.PluginStatus.PLUGIN_STATUS_RUNNING),
        runId,
        sentAtUnixMs: 0,
        addresses: [],
      });
    await register("run-2");
    // The stopped run's last word, sent again by TCP after the new run registered.
    await expect(
      call(client.heartbeat, { sentAtUnixMs: Date.now(), plugins: plugin(meshV1.PluginStatus.PLUGIN_STATUS_STOPPED), runId: "run-1" }),
    ).rejects.toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION, details: expect.stringMatching(/a newer run of agent web-1/) });
    expect(state()).toBe("running");
    await call(client.heartbeat, { sentAtUnixMs: Date.now(), plugins: plugin(meshV1.PluginStatus.PLUGIN_STATUS_DEGRADED), runId: "run-2" });
    expect(state()).toBe("degraded");
    // An agent from before runs were told (no run id) is taken at its word, as before.
    await register("");
    expect(state()).toBe("running");
    await call(client.heartbeat, { sentAtUnixMs: Date.now(), plugins: plugin(meshV1.PluginStatus.PLUGIN_STATUS_DEGRADED), runId: "run-1" });
    expect(state()).toBe("degraded");
  });

  it("counts a report as a heartbeat, keeping the plugin states it last heard", async () => {
    db.$client.prepare("UPDATE agents SET last_heartbeat_at = 1 WHERE name = 'web-1'").run();
    const before = Date.now();
    await call(client.report, { sentAtUnixMs: 0, batches: [batch(40)] });
    const row = db.select().from(agents).all()[0];
    expect(row?.lastHeartbeatAt).toBeGreaterThanOrEqual(before);
    expect(JSON.parse(row?.plugins ?? "[]")).toEqual([expect.objectContaining({ name: "passive", state: "degraded" })]);
  });

  /** A ReportStream, and what it answered: each answer, and how it ended. */
  const openStream = (claim?: string) => {
    const md = new Metadata();
    if (claim) md.set("coral-agent", claim);
    const stream = client.reportStream(md);
    const answers: number[][] = [];
    const waiters: Array<() => void> = [];
    stream.on("data", (r: meshV1.ReportStreamResponse) => {
      answers.push(r.ackedSequences);
      waiters.shift()?.();
    });
    const ended = new Promise<ServiceError | "ended">((resolve) => {
      stream.on("error", (e: ServiceError) => resolve(e));
      stream.on("end", () => resolve("ended"));
    });
    const send = (batches: meshV1.Batch[]) =>
      new Promise<number[]>((resolve) => {
        waiters.push(() => resolve(answers[answers.length - 1] as number[]));
        stream.write({ batches, sentAtUnixMs: 0 });
      });
    return { stream, answers, ended, send };
  };

  it("answers each request on a ReportStream, in order, storing each batch once", async () => {
    const { stream, send, ended } = openStream();
    db.$client.prepare("UPDATE agents SET last_heartbeat_at = 1 WHERE name = 'web-1'").run();
    const before = Date.now();
    expect(await send([batch(60), batch(61)])).toEqual([60, 61]);
    expect(await send([batch(61), batch(62)])).toEqual([61, 62]);
    const stored = db.$client
      .prepare("SELECT sequence FROM batches WHERE agent_name = 'web-1' AND sequence BETWEEN 60 AND 69 ORDER BY sequence")
      .all();
    expect(stored).toEqual([{ sequence: 60 }, { sequence: 61 }, { sequence: 62 }]);
    // Every answer counts as a heartbeat, as a Report call does.
    expect(db.select().from(agents).all()[0]?.lastHeartbeatAt).toBeGreaterThanOrEqual(before);
    stream.end();
    expect(await ended).toBe("ended");
  });

  it("ends a ReportStream with the reason when a request breaks the rules, and storing nothing of it", async () => {
    const { send, ended } = openStream();
    void send(Array.from({ length: 501 }, (_, i) => batch(1_000 + i)));
    const error = (await ended) as ServiceError;
    expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(error.details).toContain("at most 500 batches");
    expect(db.$client.prepare("SELECT count(*) AS n FROM batches WHERE sequence >= 1000").get()).toEqual({ n: 0 });
  });

  it("refuses a ReportStream from a caller claiming to be another agent", async () => {
    const { ended } = openStream("db-1");
    const error = (await ended) as ServiceError;
    expect(error.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(error.details).toContain("come from agent web-1, not db-1");
  });

  it("ends open ReportStreams when it stops, rather than waiting out its grace for them", async () => {
    const other = await startAgentService({ db, heartbeatIntervalMs: 10_000, host: "127.0.0.1", port: 0 });
    const otherClient = new meshV1.AgentServiceClient(`127.0.0.1:${other.port}`, credentials.createInsecure());
    try {
      const stream = otherClient.reportStream(new Metadata());
      const answered = new Promise((resolve) => stream.once("data", resolve));
      const ended = new Promise((resolve) => {
        stream.on("end", resolve);
        stream.on("error", resolve);
      });
      stream.write({ sentAtUnixMs: 0, batches: [batch(70)] });
      await answered;
      const started = Date.now();
      await other.close();
      await ended;
      expect(Date.now() - started).toBeLessThan(1_000); // the grace is 2 s
    } finally {
      otherClient.close();
    }
  });

  it("refuses a call that claims to be another agent", async () => {
    const error = (await call(client.heartbeat, { sentAtUnixMs: 0, plugins: [], runId: "" }, "db-1").catch(
      (e: unknown) => e,
    )) as ServiceError;
    expect(error.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(error.details).toContain("come from agent web-1, not db-1");
  });

  it("refuses a caller whose address belongs to no agent", async () => {
    db.update(agents).set({ meshIp: "100.64.0.9" }).run();
    const error = (await call(client.heartbeat, { sentAtUnixMs: 0, plugins: [], runId: "" }).catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(GrpcStatus.UNAUTHENTICATED);
    db.update(agents).set({ meshIp: "127.0.0.1" }).run();
  });
});

describe("agent health", () => {
  const running = [{ name: "passive", state: "running" as const }];
  it("follows the heartbeat age in intervals, then the plugin states", () => {
    expect(agentHealth(1_000, running, 10_000, 1_000 + 20_000)).toBe("healthy");
    expect(agentHealth(1_000, [{ name: "sdk", state: "failed" }], 10_000, 1_000)).toBe("degraded");
    expect(agentHealth(1_000, running, 10_000, 1_000 + 20_001)).toBe("unhealthy");
    expect(agentHealth(1_000, running, 10_000, 1_000 + 60_001)).toBe("offline");
    expect(agentHealth(null, running, 10_000, 1_000)).toBe("offline");
  });

  it("reads the caller's address from grpc-js peer strings", () => {
    expect(peerAddress("ipv4:100.64.0.2:5000")).toBe("100.64.0.2");
    expect(peerAddress("ipv6:[fd00::2]:5000")).toBe("fd00::2");
    expect(peerAddress("100.64.0.3:1")).toBe("100.64.0.3");
  });
});

describe("a removed agent, calling where it still can (over loopback, `--wireguard off`)", () => {
  it("is refused with agent_removed and how to come back, unlike a caller the mesh never had", async () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-rpc-removed-"));
    const db = openStore(join(dir, "coral.db"));
    db.insert(auditLog)
      .values({ time: Date.now() - 60_000, action: "agent.removed", subject: "old-1", details: JSON.stringify({ wireguardKey: "k9" }) })
      .run();
    const service = await startAgentService({ db, heartbeatIntervalMs: 10_000, host: "127.0.0.1", port: 0, trustClaimedName: true });
    const client = new meshV1.AgentServiceClient(`127.0.0.1:${service.port}`, credentials.createInsecure());
    const register = (name: string) =>
      new Promise<ServiceError>((resolve, reject) => {
        const md = new Metadata();
        md.set("coral-agent", name);
        client.register(meshV1.RegisterRequest.fromPartial({ agentName: name }), md, { deadline: Date.now() + 3_000 }, (e) =>
          e ? resolve(e) : reject(new Error("accepted")),
        );
      });
    try {
      const removed = await register("old-1");
      expect(removed.code).toBe(GrpcStatus.PERMISSION_DENIED);
      expect(removed.metadata.get("coral-error-code")).toEqual(["agent_removed"]);
      expect(removed.details).toMatch(/^agent old-1 was removed from this mesh with `coral agents remove old-1` .*--join INVITE\.$/);
      const stranger = await register("never-1");
      expect(stranger.code).toBe(GrpcStatus.UNAUTHENTICATED);
      expect(stranger.metadata.get("coral-error-code")).toEqual([]);
    } finally {
      client.close();
      await service.close();
      db.$client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
