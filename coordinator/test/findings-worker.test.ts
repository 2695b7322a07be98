/**
 * The findings engine as the coordinator runs it: on its own thread, fed by the ingest bus over
 * a real SQLite store, writing the findings table and announcing each change; and across a
 * restart, the open finding is the same finding.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Finding } from "@coral-mesh/sdk-proto";
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { afterEach, describe, expect, it } from "vitest";
import { Analysis } from "../src/analysis/host.js";
import { prepareIngest } from "../src/rpc/ingest.js";
import { Bus, type BusMessages } from "../src/store/bus.js";
import { openStore } from "../src/store/db.js";
import { findings } from "../src/store/schema.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step();
});

const SERVICE = meshV1.SubjectKind.SUBJECT_KIND_SERVICE;
const PROCESS = meshV1.SubjectKind.SUBJECT_KIND_PROCESS;
const KEY = "exe:/usr/local/bin/worker";

const event = (kind: string, subject: meshV1.Subject, attributes: Record<string, string>, time: number): meshV1.Event => ({
  kind,
  timeUnixMs: time,
  subject,
  attributes,
  evidenceJson: "{}",
  source: "passive",
});
/** One crash under a supervisor, as the passive collector reports it. */
const crash = (sequence: number, pid: number, time: number): meshV1.Batch => ({
  sequence,
  createdAtUnixMs: time,
  droppedBefore: 0,
  events: [
    event(
      "process.exited",
      { kind: PROCESS, id: `pid:${pid}:1`, name: "worker" },
      { pid: String(pid), service: "worker", serviceKey: KEY, remaining: "1" },
      time,
    ),
    event(
      "process.started",
      { kind: PROCESS, id: `pid:${pid + 1}:1`, name: "worker" },
      { pid: String(pid + 1), service: "worker", serviceKey: KEY },
      time,
    ),
    event(
      "process.restarted",
      { kind: SERVICE, id: KEY, name: "worker" },
      { oldPid: String(pid), newPid: String(pid + 1), survivors: "0" },
      time,
    ),
  ],
  metrics: [
    {
      name: "service.processes",
      value: 1,
      timeUnixMs: time,
      subject: { kind: SERVICE, id: KEY, name: "worker" },
      labels: {},
      source: "passive",
    },
  ],
  connections: [],
});

/** Resolves with the next `finding.changed` that matches, or fails after `ms`. */
function next(bus: Bus, match: (m: BusMessages["finding.changed"]) => boolean, ms = 20_000): Promise<BusMessages["finding.changed"]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching finding.changed within ${ms} ms`));
    }, ms);
    const off = bus.on("finding.changed", (m) => {
      if (!match(m)) return;
      clearTimeout(timer);
      off();
      resolve(m);
    });
  });
}

describe("the findings engine in the coordinator", () => {
  it("runs on its own thread from the bus, writes the findings table, and keeps its findings across a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-findings-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const storePath = join(dir, "coral.db");
    const db = openStore(storePath);
    cleanups.push(() => {
      db.$client.close();
    });
    const bus = new Bus();
    const ingest = prepareIngest(db, bus);
    const lines: string[] = [];
    const start = async () => {
      const analysis = new Analysis({ db, bus, storePath, evaluateEveryMs: 200, log: (l) => lines.push(l) });
      await analysis.start();
      return analysis;
    };

    let analysis = await start();
    cleanups.push(() => analysis.stop());
    const opened = next(bus, (m) => m.change === "opened" && m.finding.kind === "crash-loop");
    const now = Date.now();
    ingest("host-a", [crash(1, 100, now - 20_000), crash(2, 200, now - 10_000), crash(3, 300, now - 1_000)], now);
    const { finding } = await opened;
    expect(finding).toMatchObject({
      kind: "crash-loop",
      service: "worker",
      agent: "host-a",
      state: "open",
      rootCause: { service: "worker", kind: "crash-loop" },
    });
    expect(finding.evidence.events.map((e) => e.kind)).toContain("process.restarted");
    const rows = db.select().from(findings).all();
    expect(rows.map((r) => [r.id, r.state, r.kind])).toEqual([[finding.id, "open", "crash-loop"]]);
    expect(lines.some((l) => l.startsWith("finding opened: [warning] crash-loop worker on host-a crash-loops"))).toBe(true);

    // A new engine (the coordinator restarted) reads it back: one more crash updates it, nothing new opens.
    await analysis.stop();
    const seen: BusMessages["finding.changed"][] = [];
    bus.on("finding.changed", (m) => seen.push(m));
    analysis = await start();
    expect(lines.filter((l) => l.includes("1 finding(s) open"))).toHaveLength(1);
    const later = Date.now();
    const updated = next(bus, (m) => m.change === "updated" && m.finding.id === finding.id);
    // Three more crashes: twice the default critical threshold of six in all, so its severity moves.
    ingest("host-a", [crash(4, 400, later - 3_000), crash(5, 500, later - 2_000), crash(6, 600, later - 1_000)], later);
    const moved = await updated;
    expect(moved.finding).toMatchObject({ id: finding.id, severity: "critical", openedAt: finding.openedAt });
    expect(seen.filter((m) => m.change === "opened")).toEqual([]);
    const row = db.select().from(findings).all();
    expect(row).toHaveLength(1);
    expect(row[0]).toMatchObject({ id: finding.id, severity: "critical", state: "open" });
    expect((row[0] as { evidence: Finding["evidence"] }).evidence.events.length).toBeGreaterThanOrEqual(6);
  }, 60_000);
});
