import type { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { systemClock } from "../src/clock.js";
import { Delivery, type DeliveryOptions, SEND_RETRY_MS } from "../src/delivery.js";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** A spool of numbered batches (the bytes are the sequence). */
function fakeSpool(count: number) {
  const pending = new Map(Array.from({ length: count }, (_, i) => [i + 1, new Uint8Array([i + 1])]));
  return {
    pendingEncoded: (limit: number) => [...pending.values()].slice(0, limit),
    ack: (sequences: Iterable<number>) => {
      for (const s of sequences) pending.delete(s);
    },
    get size() {
      return { batches: pending.size, bytes: 0, droppedTotal: 0 };
    },
  };
}

const acked = (batches: Uint8Array[]) => ({ ackedSequences: batches.map((b) => b[0] as number) }) as meshV1.ReportResponse;

function delivery(spool: ReturnType<typeof fakeSpool>, rpc: DeliveryOptions["rpc"]) {
  const log: string[] = [];
  const onAcked = vi.fn();
  const d = new Delivery({ spool, rpc, clock: systemClock, log: (l) => log.push(l), onAcked });
  return { d, log, onAcked };
}

describe("Delivery", () => {
  it("sends nothing before start, then drains the spool over the stream", async () => {
    const spool = fakeSpool(3);
    const rpc = { report: vi.fn(), reportOnStream: vi.fn(async (batches: Uint8Array[]) => acked(batches)) };
    const { d, onAcked } = delivery(spool, rpc);
    await d.send();
    expect(rpc.reportOnStream).not.toHaveBeenCalled();
    d.start();
    await d.send();
    expect(spool.size.batches).toBe(0);
    expect(onAcked).toHaveBeenCalledTimes(1);
    expect(rpc.report).not.toHaveBeenCalled();
  });

  it("falls back to one call per report when the coordinator does not serve the stream", async () => {
    const spool = fakeSpool(2);
    const rpc = {
      report: vi.fn(async (report: { batches: Uint8Array[] }) => acked(report.batches)),
      reportOnStream: vi.fn(async () => {
        throw Object.assign(new Error("unimplemented"), { code: status.UNIMPLEMENTED });
      }),
    };
    const { d, log } = delivery(spool, rpc);
    d.start();
    await d.send();
    await d.send();
    expect(spool.size.batches).toBe(0);
    expect(rpc.reportOnStream).toHaveBeenCalledTimes(1);
    expect(rpc.report).toHaveBeenCalledTimes(1);
    expect(log).toEqual(["the coordinator does not serve ReportStream (an older version); reporting one call per batch"]);
  });

  it("retries a failed send after SEND_RETRY_MS, one drain at a time, and says when reports get through again", async () => {
    const spool = fakeSpool(1);
    let fail = true;
    const rpc = {
      report: vi.fn(),
      reportOnStream: vi.fn(async (batches: Uint8Array[]) => {
        await new Promise((r) => setTimeout(r, 10));
        if (fail) throw new Error("unavailable");
        return acked(batches);
      }),
    };
    const { d, log } = delivery(spool, rpc);
    d.start();
    const first = d.send();
    expect(d.send()).toBe(first); // the drain under way
    await vi.advanceTimersByTimeAsync(10);
    await first;
    expect(log).toEqual(["sending reports failed (unavailable); they stay spooled and are retried"]);
    fail = false;
    await vi.advanceTimersByTimeAsync(SEND_RETRY_MS - 1);
    expect(rpc.reportOnStream).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(11);
    expect(rpc.reportOnStream).toHaveBeenCalledTimes(2);
    expect(spool.size.batches).toBe(0);
    expect(log.at(-1)).toBe("reports reach the coordinator again; 0 batch(es) still spooled");
  });

  it("arms no retry once stopped", async () => {
    const spool = fakeSpool(1);
    const rpc = { report: vi.fn(), reportOnStream: vi.fn(async () => Promise.reject(new Error("unavailable"))) };
    const { d } = delivery(spool, rpc);
    d.start();
    d.stop();
    await d.send();
    await vi.advanceTimersByTimeAsync(10 * SEND_RETRY_MS);
    expect(rpc.reportOnStream).toHaveBeenCalledTimes(1);
  });
});
