import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { afterEach, describe, expect, it } from "vitest";
import { encodeReportRequest, type NewBatch, SEGMENT_BYTES, Spool, waitingBatches } from "../src/spool.js";

const dirs: string[] = [];
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), "coral-spool-"));
  dirs.push(dir);
  return join(dir, "spool");
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const segments = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".log"));

const batch = (n: number): NewBatch => ({
  createdAtUnixMs: 1_000 + n,
  events: [
    {
      kind: "process.started",
      timeUnixMs: 1_000 + n,
      subject: { kind: 3, id: `pid:${n}`, name: "node" },
      attributes: { n: String(n) },
      evidenceJson: "{}",
      source: "test",
    },
  ],
  metrics: [],
  connections: [],
});

describe("the spool", () => {
  it("hands out batches as written, which make the same ReportRequest as encoding them again", () => {
    const spool = new Spool(fresh());
    // Lengths that take a varint of one, two and three bytes.
    for (const padding of [0, 300, 20_000]) {
      const big = batch(padding);
      (big.events[0] as meshV1.Event).evidenceJson = JSON.stringify({ pad: "x".repeat(padding) });
      spool.append(big);
    }
    const encoded = spool.pendingEncoded(10);
    expect(encoded.map((bytes) => bytes.length)).toEqual([expect.any(Number), expect.any(Number), expect.any(Number)]);
    expect(encoded[1]?.length).toBeGreaterThan(127);
    expect(encoded[2]?.length).toBeGreaterThan(16_383);
    const request = encodeReportRequest(encoded);
    expect(Buffer.from(meshV1.ReportRequest.encode({ batches: spool.pending(10), sentAtUnixMs: 0 }).finish()).equals(request)).toBe(true);
    expect(meshV1.ReportRequest.decode(request).batches.map((b) => b.sequence)).toEqual([1, 2, 3]);
    expect(encodeReportRequest([]).length).toBe(0);
  });

  it("keeps batches in order until acknowledged, across a reopen", () => {
    const dir = fresh();
    const spool = new Spool(dir);
    expect([1, 2, 3].map((n) => spool.append(batch(n)).sequence)).toEqual([1, 2, 3]);
    spool.ack([1]);
    expect(waitingBatches(dir)).toBe(2); // read from disk, beside the spool that writes it
    const reopened = new Spool(dir);
    expect(reopened.pending(10).map((b) => [b.sequence, b.events[0]?.attributes.n])).toEqual([
      [2, "2"],
      [3, "3"],
    ]);
    reopened.ack([2, 3]);
    // Sequences are never reused, even once everything was acknowledged (a restart skips
    // what was reserved but not used).
    const after = new Spool(dir).append(batch(4)).sequence;
    expect(after).toBeGreaterThan(3);
    expect(new Spool(dir).append(batch(5)).sequence).toBeGreaterThan(after);
  });

  it("drops the oldest when full, and says so in the log and in the next batch", () => {
    const lines: string[] = [];
    const spool = new Spool(fresh(), { maxBatches: 3, maxBytes: 1 << 20 }, (line) => lines.push(line));
    for (let n = 1; n <= 5; n++) spool.append(batch(n));
    expect(spool.pending(10).map((b) => [b.sequence, b.droppedBefore])).toEqual([
      [3, 0],
      [4, 1],
      [5, 1],
    ]);
    expect(spool.size).toMatchObject({ batches: 3, droppedTotal: 2 });
    expect(lines).toEqual([
      "spool full (3 batches or 1 MiB): dropped the 1 oldest batch(es) unsent; 1 dropped in all",
      "spool full (3 batches or 1 MiB): dropped the 1 oldest batch(es) unsent; 2 dropped in all",
    ]);
  });

  it("bounds its bytes as well as its batches", () => {
    const spool = new Spool(fresh(), { maxBatches: 1_000, maxBytes: 300 });
    for (let n = 1; n <= 20; n++) spool.append(batch(n));
    expect(spool.size.bytes).toBeLessThanOrEqual(300);
    expect(spool.size.batches).toBeGreaterThan(1);
    expect(spool.size.droppedTotal + spool.size.batches).toBe(20);
  });

  it("cuts off a record a crash left torn, keeps every whole one before it, and goes on writing after it", () => {
    const dir = fresh();
    const spool = new Spool(dir);
    for (let n = 1; n <= 3; n++) spool.append(batch(n));
    spool.close();
    const [segment] = segments(dir);
    const path = join(dir, segment as string);
    const whole = statSync(path).size;
    truncateSync(path, whole - 5); // the last batch's write, cut short
    expect(waitingBatches(dir)).toBe(2);
    expect(statSync(path).size).toBe(whole - 5); // only looked at

    const lines: string[] = [];
    const reopened = new Spool(dir, undefined, (line) => lines.push(line));
    expect(reopened.pending(10).map((b) => b.sequence)).toEqual([1, 2]);
    expect(lines).toEqual([expect.stringMatching(/ends in a record cut short at byte \d+ .*cutting off its last \d+ byte/)]);
    expect(reopened.append(batch(4)).sequence).toBeGreaterThan(3);
    reopened.close();
    expect(new Spool(dir).pending(10).map((b) => b.events[0]?.attributes.n)).toEqual(["1", "2", "4"]);

    // A record whose bytes changed (its CRC no longer matches) ends the log the same way.
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 0xff;
    writeFileSync(path, bytes);
    expect(new Spool(dir).pending(10).map((b) => b.events[0]?.attributes.n)).toEqual(["1", "2"]);
  });

  it("moves on to a new segment once one is full, and deletes old ones once all their batches are acknowledged", () => {
    const dir = fresh();
    const spool = new Spool(dir);
    const big = (n: number): NewBatch => {
      const b = batch(n);
      (b.events[0] as meshV1.Event).evidenceJson = JSON.stringify({ pad: "x".repeat(SEGMENT_BYTES / 4) });
      return b;
    };
    for (let n = 1; n <= 7; n++) spool.append(big(n));
    expect(segments(dir).length).toBe(3); // three batches a segment
    spool.ack([2, 3, 4, 5, 6]); // the first segment still holds batch 1
    expect(segments(dir).length).toBe(3);
    spool.ack([1]);
    expect(segments(dir).length).toBe(1); // the second went too; the third is still written to
    spool.close();
    const reopened = new Spool(dir);
    expect(reopened.pending(10).map((b) => b.sequence)).toEqual([7]);
    expect(reopened.size.batches).toBe(1);
    reopened.ack([7]);
    reopened.close();
    // What is on disk is at most the segment being written: its batches are all forgotten.
    expect(new Spool(dir).size).toMatchObject({ batches: 0, bytes: 0 });
    expect(segments(dir).length).toBe(0);
  });

  it("reads a spool written before the log, a file per batch, and removes each file once acknowledged", () => {
    const dir = fresh();
    mkdirSync(dir, { recursive: true });
    for (const sequence of [5, 6]) {
      const old = meshV1.Batch.encode({ ...batch(sequence), sequence, droppedBefore: 0 }).finish();
      writeFileSync(join(dir, `${String(sequence).padStart(16, "0")}.batch`), old);
    }
    const spool = new Spool(dir);
    expect(spool.append(batch(7)).sequence).toBe(7);
    expect(spool.pending(10).map((b) => [b.sequence, b.events[0]?.attributes.n])).toEqual([
      [5, "5"],
      [6, "6"],
      [7, "7"],
    ]);
    expect(waitingBatches(dir)).toBe(3);
    spool.ack([5, 7]);
    expect(readdirSync(dir).filter((f) => f.endsWith(".batch"))).toEqual(["0000000000000006.batch"]);
    expect(waitingBatches(dir)).toBe(1);
    spool.close();
    expect(new Spool(dir).pending(10).map((b) => b.sequence)).toEqual([6]);
  });

  it("survives kill -9 in the middle of writing: every batch on disk is whole, none is reused", async () => {
    const dir = fresh();
    const here = dirname(fileURLToPath(import.meta.url));
    const writer = `
      import { Spool } from ${JSON.stringify(resolve(here, "../src/spool.ts"))};
      const spool = new Spool(${JSON.stringify(dir)});
      process.stdout.write("ready\\n");
      for (let n = 0; ; n++) spool.append({ createdAtUnixMs: n, events: [], metrics: [{ name: "m", value: n, timeUnixMs: n, labels: {}, source: "" }], connections: [] });
    `;
    const child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", "--input-type=module", "-e", writer], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((r) => child.stdout?.once("data", () => r()));
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 300));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));

    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp")).length).toBeLessThanOrEqual(1);
    const spool = new Spool(dir);
    expect(readdirSync(dir).some((f) => f.endsWith(".tmp"))).toBe(false);
    const batches = spool.pending(1_000_000);
    expect(batches.length).toBeGreaterThan(5);
    batches.forEach((b, i) => {
      expect(b.sequence).toBe(i + 1);
      expect(b.metrics[0]?.value).toBe(i);
    });
    expect(spool.append(batch(0)).sequence).toBeGreaterThan(batches.length);
  }, 30_000);
});
