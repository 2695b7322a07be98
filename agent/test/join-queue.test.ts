import { DiscoveryError } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { queueJoin } from "../src/join.js";

const busy = () => new DiscoveryError("join_ticket_busy", "busy", 429, 5);

describe("queueing a join request", () => {
  it("waits as discovery says while the invite's ticket is busy, then queues", async () => {
    let clock = 0;
    let calls = 0;
    const slept: number[] = [];
    const steps: string[] = [];
    const created = await queueJoin(
      async () => {
        calls++;
        if (calls < 3) throw busy();
        return { joinId: "j" };
      },
      60_000,
      (step) => steps.push(step),
      async (ms) => {
        slept.push(ms);
        clock += ms;
      },
      () => clock,
    );
    expect(created).toEqual({ joinId: "j" });
    expect(slept).toEqual([5000, 5000]);
    expect(steps[0]).toMatch(/trying again in 5 s/);
  });

  it("gives up at the deadline with discovery's error, and never retries other refusals", async () => {
    let clock = 0;
    const tick = async (ms: number) => {
      clock += ms;
    };
    await expect(
      queueJoin(
        async () => {
          throw busy();
        },
        12_000,
        () => {},
        tick,
        () => clock,
      ),
    ).rejects.toMatchObject({ code: "join_ticket_busy" });
    expect(clock).toBe(10_000);
    let calls = 0;
    await expect(
      queueJoin(
        async () => {
          calls++;
          throw new DiscoveryError("join_ticket_expired", "expired", 403);
        },
        60_000,
        () => {},
        tick,
        () => clock,
      ),
    ).rejects.toMatchObject({ code: "join_ticket_expired" });
    expect(calls).toBe(1);
  });
});
