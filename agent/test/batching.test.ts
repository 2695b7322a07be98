import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Batcher } from "../src/batching.js";
import { systemClock } from "../src/clock.js";
import type { NewBatch } from "../src/spool.js";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Batcher", () => {
  it("marks what each plugin emits with that plugin's name, in one batch", () => {
    const batches: NewBatch[] = [];
    const batcher = new Batcher({ clock: systemClock, onBatch: (b) => batches.push(b) });
    batcher.emitterFor("passive").metric({ name: "host.cpu", value: 0.5, subject: { kind: "host", id: "h" } });
    batcher.emitterFor("sdk").event({ kind: "service.up", time: 5, subject: { kind: "service", id: "api" } });
    batcher.emitterFor("ebpf").connection({ localAddress: "10.0.0.1", localPort: 1, remoteAddress: "10.0.0.2", remotePort: 2 });
    batcher.flush();
    expect(batches).toHaveLength(1);
    const [batch] = batches as [NewBatch];
    expect(batch.createdAtUnixMs).toBe(1_000_000);
    expect(batch.metrics).toEqual([
      { name: "host.cpu", value: 0.5, timeUnixMs: 1_000_000, subject: { kind: 4, id: "h", name: "" }, labels: {}, source: "passive" },
    ]);
    expect(batch.events[0]).toMatchObject({ kind: "service.up", timeUnixMs: 5, evidenceJson: "{}", source: "sdk" });
    expect(batch.connections[0]).toMatchObject({ protocol: "tcp", pid: 0, source: "ebpf" });
  });

  it("makes a batch of what arrives outside a collect after the flush delay, and none of nothing", async () => {
    const batches: NewBatch[] = [];
    const batcher = new Batcher({ clock: systemClock, flushDelayMs: 1_000, onBatch: (b) => batches.push(b) });
    batcher.flush();
    expect(batches).toEqual([]);
    const emit = batcher.emitterFor("sample");
    emit.event({ kind: "a", subject: { kind: "service", id: "api" } });
    await vi.advanceTimersByTimeAsync(500);
    emit.event({ kind: "b", subject: { kind: "service", id: "api" } }); // the timer runs from the first item, not the last
    await vi.advanceTimersByTimeAsync(499);
    expect(batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(batches.map((b) => b.events.map((e) => e.kind))).toEqual([["a", "b"]]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(batches).toHaveLength(1);
  });
});
