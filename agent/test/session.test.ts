/** The session's policy (when to heartbeat, when to look the coordinator up again) on fake timers. */
import { CoralError } from "@coral-mesh/sdk-proto";
import type { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { Metadata } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Backoff } from "../src/backoff.js";
import { systemClock } from "../src/clock.js";
import { HEARTBEAT_AFTER_SILENCE, Session, type SessionOptions } from "../src/session.js";

const INTERVAL = 10_000;
const T0 = 1_000_000;

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

function harness(overrides: Partial<SessionOptions> = {}) {
  const at = () => Date.now() - T0;
  const record = { heartbeats: [] as number[], lookups: [] as number[], log: [] as string[] };
  const control = { failHeartbeats: false, failRegisters: 0, registerTicket: "", heartbeatTicket: "" };
  let states: meshV1.PluginState[] = [{ name: "passive", version: "1", status: 2, lastError: "", sinceUnixMs: T0 }];
  const rpc = {
    register: vi.fn(async () => {
      if (control.failRegisters > 0) {
        control.failRegisters--;
        throw Object.assign(new Error("unavailable"), { details: "no connection" });
      }
      return { heartbeatIntervalMs: INTERVAL, lastAckedSequence: 0, relayTicket: control.registerTicket } as meshV1.RegisterResponse;
    }),
    heartbeat: vi.fn(async () => {
      record.heartbeats.push(at());
      if (control.failHeartbeats) throw new Error("deadline exceeded");
      return { relayTicket: control.heartbeatTicket };
    }),
    renew: vi.fn(),
  };
  const options: SessionOptions = {
    rpc,
    clock: systemClock,
    log: (line) => record.log.push(line),
    runId: "run-1",
    self: { agentName: "web-1", agentVersion: "0.1.0", hostname: "web", os: "linux", arch: "x64", addresses: [] },
    pluginStates: () => states,
    heartbeatIntervalMs: INTERVAL,
    heartbeatIntervalFixed: false,
    reconnect: vi.fn(async () => {}),
    lookup: vi.fn(async () => {
      record.lookups.push(at());
      return [];
    }),
    moveTo: vi.fn(async () => {}),
    onBack: vi.fn(),
    onRemoved: vi.fn(),
    ...overrides,
  };
  const session = new Session(options);
  return {
    session,
    rpc,
    options,
    record,
    control,
    setStates: (next: meshV1.PluginState[]) => {
      states = next;
    },
  };
}

describe("relay tickets", () => {
  it("are taken from register's and heartbeats' answers, and a due one is asked for between reports, at most hourly", async () => {
    const tickets: string[] = [];
    let due = false;
    const { session, record, control } = harness({ onRelayTicket: (t) => tickets.push(t), relayTicketDue: () => due });
    control.registerTicket = "ticket-1";
    await session.register(undefined);
    expect(tickets).toEqual(["ticket-1"]);

    // Reports keep coming (contact), so no heartbeat is due for silence; a due ticket sends one.
    due = true;
    control.heartbeatTicket = "ticket-2";
    await vi.advanceTimersByTimeAsync(1_000);
    session.contact();
    await vi.advanceTimersByTimeAsync(0);
    expect(record.heartbeats).toEqual([1_000]);
    expect(tickets).toEqual(["ticket-1", "ticket-2"]);

    // Still due (the coordinator gave none): asked again only an hour later, however many reports
    // come meanwhile (one every 10 s, so no heartbeat is due for silence).
    control.heartbeatTicket = "";
    for (let t = 10_000; t <= 3_600_000; t += 10_000) {
      await vi.advanceTimersByTimeAsync(10_000);
      session.contact();
    }
    await vi.advanceTimersByTimeAsync(0);
    expect(record.heartbeats).toEqual([1_000, 3_601_000]);
    expect(tickets).toEqual(["ticket-1", "ticket-2"]);
  });
});

describe("heartbeats", () => {
  it("go only after 1.25 intervals of silence, re-armed at each contact", async () => {
    const { session, record } = harness();
    await session.register(undefined);
    const due = INTERVAL * HEARTBEAT_AFTER_SILENCE;
    await vi.advanceTimersByTimeAsync(due - 1);
    expect(record.heartbeats).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(record.heartbeats).toEqual([due]);

    // A report answered 5 s later counts as contact: the next heartbeat waits a whole silence from then.
    await vi.advanceTimersByTimeAsync(5_000);
    session.contact();
    await vi.advanceTimersByTimeAsync(due - 1);
    expect(record.heartbeats).toEqual([due]);
    await vi.advanceTimersByTimeAsync(1);
    expect(record.heartbeats).toEqual([due, due + 5_000 + due]);
  });

  it("go at once when a plugin's state changes, and not when it did not", async () => {
    const { session, record, setStates } = harness();
    session.pluginsChanged(); // before register: the coordinator hears it from register
    await vi.advanceTimersByTimeAsync(0);
    expect(record.heartbeats).toEqual([]);

    await session.register(undefined);
    await vi.advanceTimersByTimeAsync(1_000);
    session.pluginsChanged();
    await vi.advanceTimersByTimeAsync(0);
    expect(record.heartbeats).toEqual([]);

    setStates([{ name: "passive", version: "1", status: 3, lastError: "slow", sinceUnixMs: T0 + 1_000 }]);
    session.pluginsChanged();
    await vi.advanceTimersByTimeAsync(0);
    expect(record.heartbeats).toEqual([1_000]);
    // That was contact too: the next one after a silence from then.
    await vi.advanceTimersByTimeAsync(INTERVAL * HEARTBEAT_AFTER_SILENCE);
    expect(record.heartbeats).toEqual([1_000, 1_000 + INTERVAL * HEARTBEAT_AFTER_SILENCE]);
  });

  it("go once every interval while they fail, and after the silence again once one works", async () => {
    const { session, record, control, rpc, options } = harness();
    await session.register(undefined);
    control.failHeartbeats = true;
    const first = INTERVAL * HEARTBEAT_AFTER_SILENCE;
    await vi.advanceTimersByTimeAsync(first + 3 * INTERVAL);
    expect(record.heartbeats).toEqual([first, first + INTERVAL, first + 2 * INTERVAL, first + 3 * INTERVAL]);
    expect(record.log.filter((l) => l.startsWith("heartbeat failed"))).toEqual(["heartbeat failed: deadline exceeded"]);
    expect(rpc.renew).toHaveBeenCalledTimes(1); // after the third failure in a row

    control.failHeartbeats = false;
    await vi.advanceTimersByTimeAsync(INTERVAL);
    const back = first + 4 * INTERVAL;
    expect(record.heartbeats.at(-1)).toBe(back);
    expect(record.log).toContain("heartbeats reach the coordinator again");
    expect(options.onBack).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(INTERVAL * HEARTBEAT_AFTER_SILENCE);
    expect(record.heartbeats.slice(-2)).toEqual([back, back + INTERVAL * HEARTBEAT_AFTER_SILENCE]);
  });

  it("stop after stop()", async () => {
    const { session, record } = harness();
    await session.register(undefined);
    session.stop();
    await vi.advanceTimersByTimeAsync(10 * INTERVAL);
    expect(record.heartbeats).toEqual([]);
  });

  it("keep the interval the user chose over the coordinator's", async () => {
    const { session, record } = harness({ heartbeatIntervalMs: 4_000, heartbeatIntervalFixed: true });
    await session.register(undefined);
    expect(session.heartbeatIntervalMs).toBe(4_000);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(record.heartbeats).toEqual([5_000]);
  });
});

describe("looking the coordinator up again", () => {
  it("happens every third failed heartbeat, at most as often as a backoff that doubles (1, 2, 4 min), and starts over once heartbeats work", async () => {
    const { session, record, control } = harness();
    await session.register(undefined);
    control.failHeartbeats = true;
    // Heartbeats fail at 12.5 s, 22.5 s, ...; every third is followed by a look, if the backoff allows.
    await vi.advanceTimersByTimeAsync(400_000);
    expect(record.lookups).toEqual([32_500, 152_500, 392_500]);

    control.failHeartbeats = false;
    await vi.advanceTimersByTimeAsync(INTERVAL); // the failure at 402.5 s's next try works
    const back = record.heartbeats.at(-1) as number;
    expect(back).toBe(402_500);
    control.failHeartbeats = true;
    // Failing again from 415 s: the third (435 s) is within a minute of the last look; the
    // sixth (465 s) is not, and a minute is all the reset backoff asks.
    await vi.advanceTimersByTimeAsync(70_000);
    expect(record.lookups).toEqual([32_500, 152_500, 392_500, 465_000]);
  });

  it("moves to the endpoints discovery has now", async () => {
    const { session, control, options } = harness({ lookup: vi.fn(async () => ["203.0.113.9:51820"]) });
    await session.register(undefined);
    control.failHeartbeats = true;
    await vi.advanceTimersByTimeAsync(INTERVAL * HEARTBEAT_AFTER_SILENCE + 2 * INTERVAL);
    expect(options.moveTo).toHaveBeenCalledWith(["203.0.113.9:51820"]);
  });
});

describe("register", () => {
  it("retries with a pause that doubles, looking the coordinator up after the first failure", async () => {
    const { session, record, control, rpc } = harness();
    control.failRegisters = 3;
    const registered = session.register(undefined);
    await vi.advanceTimersByTimeAsync(0);
    expect(rpc.register).toHaveBeenCalledTimes(1);
    expect(record.lookups).toEqual([0]);
    await vi.advanceTimersByTimeAsync(500);
    expect(rpc.register).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(rpc.register).toHaveBeenCalledTimes(3);
    await vi.advanceTimersByTimeAsync(2_000);
    await registered;
    expect(rpc.register).toHaveBeenCalledTimes(4);
    expect(record.log.filter((l) => l.startsWith("registering"))).toEqual([
      "registering with the coordinator failed (no connection); retrying in 0.5 s",
      "registering with the coordinator failed (no connection); retrying in 1 s",
      "registering with the coordinator failed (no connection); retrying in 2 s",
    ]);
  });

  it("after a handshake just now, waits four times as long as it took, and on no answer shakes hands again at once", async () => {
    const { session, control, rpc, options } = harness();
    control.failRegisters = 1;
    await session.register(100);
    expect(rpc.register.mock.calls.map((call) => (call as unknown[])[1])).toEqual([750, 5_000]);
    expect(options.reconnect).toHaveBeenCalledTimes(1);
    expect(options.lookup).not.toHaveBeenCalled();
  });

  it("ends with StoppedError when its signal is aborted while it waits", async () => {
    const stop = new AbortController();
    const { session, control } = harness({ signal: stop.signal });
    control.failRegisters = 100;
    const registered = session.register(undefined);
    const outcome = expect(registered).rejects.toMatchObject({ name: "StoppedError" });
    await vi.advanceTimersByTimeAsync(100);
    stop.abort();
    await outcome;
  });
});

describe("a removed agent", () => {
  const refused = () => {
    const metadata = new Metadata();
    metadata.set("coral-error-code", "agent_removed");
    return Object.assign(new Error("7 PERMISSION_DENIED"), { code: 7, details: "agent web-1 was removed", metadata });
  };

  it("stops registering at the coordinator's refusal, with agent_removed, instead of retrying", async () => {
    const { session, rpc } = harness();
    rpc.register.mockImplementation(async () => {
      throw refused();
    });
    await expect(session.register(undefined)).rejects.toMatchObject({ code: "agent_removed" });
    expect(rpc.register).toHaveBeenCalledTimes(1);
  });

  it("stops registering when discovery's record says it was removed", async () => {
    const { session, control, rpc } = harness({
      lookup: vi.fn(async () => {
        throw new CoralError("agent_removed", "This agent (web-1) was removed");
      }),
    });
    control.failRegisters = 100;
    await expect(session.register(undefined)).rejects.toMatchObject({ code: "agent_removed" });
    expect(rpc.register).toHaveBeenCalledTimes(1);
  });

  it("ends its heartbeats at the refusal, or at discovery's word, and says so once", async () => {
    for (const how of ["refused", "record"] as const) {
      const { session, rpc, options, record } = harness({
        lookup: vi.fn(async () => {
          throw new CoralError("agent_removed", "This agent (web-1) was removed");
        }),
      });
      await session.register(undefined);
      rpc.heartbeat.mockImplementation(async () => {
        throw how === "refused" ? refused() : new Error("deadline exceeded");
      });
      await vi.advanceTimersByTimeAsync(INTERVAL * 10);
      expect(options.onRemoved).toHaveBeenCalledTimes(1);
      expect(options.onRemoved).toHaveBeenCalledWith(expect.objectContaining({ code: "agent_removed" }));
      // Nothing after that: no retries that look like a network fault.
      const calls = rpc.heartbeat.mock.calls.length;
      await vi.advanceTimersByTimeAsync(INTERVAL * 10);
      expect(rpc.heartbeat.mock.calls.length).toBe(calls);
      expect(calls).toBe(how === "refused" ? 1 : 3);
      expect(record.log.filter((l) => l.startsWith("looking the coordinator up again failed"))).toEqual([]);
    }
  });
});

describe("Backoff", () => {
  it("doubles up to its ceiling and starts over on reset", () => {
    const backoff = new Backoff(500, 3_000);
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([500, 1_000, 2_000, 3_000, 3_000]);
    backoff.reset();
    expect(backoff.peek()).toBe(500);
  });
});
