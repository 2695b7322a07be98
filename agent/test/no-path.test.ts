/** What the agent says when no handshake with the hub came: a relay only where NATs can be the cause. */
import { CoralError } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { explainNoPath, type NoPathFacts } from "../src/no-path.js";

const facts = (over: Partial<NoPathFacts>): NoPathFacts => ({
  endpoints: ["203.0.113.10:51820"],
  timeoutSeconds: 10,
  lookup: { ok: true },
  behindNat: true,
  reachedBefore: false,
  discoveryUrl: "http://198.51.100.1:8787",
  ...over,
});

describe("explainNoPath", () => {
  it("says a relay is needed only behind a NAT, never having reached a coordinator whose record is current", () => {
    expect(explainNoPath(facts({}))).toMatch(/^no direct path to the coordinator: .*needs the relay, and this agent has no relay ticket/);
  });

  it("says the coordinator is not on the relay when the relay was tried too, and how to find out why", () => {
    const said = explainNoPath(facts({ relay: "198.51.100.1:8787" }));
    expect(said).toMatch(/^no path to the coordinator: .*nor through the relay at 198\.51\.100\.1:8787/);
    expect(said).toContain("lines starting `relay:`");
    // An agent that reached the coordinator before hears that the coordinator does not answer.
    expect(explainNoPath(facts({ relay: "198.51.100.1:8787", reachedBefore: true }))).toMatch(
      /^the coordinator does not answer: no handshake through 203\.0\.113\.10:51820 nor the relay at 198\.51\.100\.1:8787 \(this agent has reached it before/,
    );
  });

  it("says the coordinator does not answer when this agent reached it before, or this host has no NAT", () => {
    for (const said of [explainNoPath(facts({ reachedBefore: true })), explainNoPath(facts({ behindNat: false }))]) {
      expect(said).toMatch(
        /^the coordinator does not answer: no handshake through 203\.0\.113\.10:51820 in 10 s \(.*NATs are not the cause\)/,
      );
      expect(said).toContain("check that `coral status` answers");
      expect(said).not.toContain("relay");
    }
  });

  it("says the coordinator is not running when its record at discovery expired, and what discovery said when it cannot be asked", () => {
    const expired = explainNoPath(facts({ lookup: { ok: false, error: new CoralError("mesh_not_found", "no record") } }));
    expect(expired).toMatch(/^the coordinator does not answer: .*its record at discovery has expired/);
    expect(expired).not.toContain("relay");
    const away = explainNoPath(facts({ lookup: { ok: false, error: new CoralError("discovery_unreachable", "connect ETIMEDOUT") } }));
    expect(away).toContain("discovery at http://198.51.100.1:8787 cannot be asked about it (connect ETIMEDOUT)");
    expect(away).not.toContain("relay");
  });

  it("throws the removal the lookup found", () => {
    expect(() => explainNoPath(facts({ lookup: { ok: false, error: new CoralError("agent_removed", "removed") } }))).toThrow(
      expect.objectContaining({ code: "agent_removed" }),
    );
  });
});
