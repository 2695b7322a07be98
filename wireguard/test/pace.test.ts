/** The relay ends' pacing: a burst, then a steady rate, so one end alone cannot spend the room's budget. */
import { relayLimits } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { Pace, RELAY_PACE } from "../src/path/index.js";

describe("Pace", () => {
  it("lets a burst through, then the rate, and fills again while idle", () => {
    let now = 0;
    const pace = new Pace({ burst: 5, perSecond: 10 }, () => now);
    const sent = () => Array.from({ length: 20 }, () => pace.take()).filter(Boolean).length;
    expect(sent()).toBe(5);
    now += 500; // half a second: five more
    expect(sent()).toBe(5);
    expect(pace.wait()).toBe(100); // the next one in a tenth of a second
    now += 60_000; // idle for a minute: a full burst, no more
    expect(pace.wait()).toBe(0);
    expect(sent()).toBe(5);
  });

  it("keeps an agent and its hub together under the room's budget for a minute, whatever they are given", () => {
    const minute = (limit: { burst: number; perSecond: number }) => {
      let now = 0;
      const pace = new Pace(limit, () => now);
      let sent = 0;
      // Offered far more than the rate, every 10 ms for a minute.
      for (; now < 60_000; now += 10) for (let i = 0; i < 20; i++) if (pace.take()) sent++;
      return sent;
    };
    const agent = minute(RELAY_PACE.agent);
    const hub = minute(RELAY_PACE.hub);
    expect(agent).toBeLessThanOrEqual(RELAY_PACE.agent.burst + 60 * RELAY_PACE.agent.perSecond);
    expect(agent + hub).toBeLessThan(relayLimits.maxMessagesPerMinute);
    // A 1 MiB backlog (about 800 datagrams up, 300 to 400 acknowledgements down) goes in one burst.
    expect(RELAY_PACE.agent.burst).toBeGreaterThan(800);
    expect(RELAY_PACE.hub.burst).toBeGreaterThan(400);
  });
});
