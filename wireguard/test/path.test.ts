/** The path strategies' loops, against a fake peer table on fake timers (the lab tests run them for real). */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { PeerStatus } from "../src/dump.js";
import type { PeerConfig } from "../src/interface.js";
import {
  CONNECT_TIMEOUT_MS,
  connect,
  direct,
  KEEPALIVE_SECONDS,
  MESH_PREFIX,
  type Nudger,
  type PathStrategy,
  PROBE_MS,
  pathKind,
  probeDirect,
  punch,
  RELAY_HANDSHAKE_MS,
  RELAY_NEEDED_AFTER_MS,
  RELAY_OPEN_MS,
  revive,
  throughRelay,
} from "../src/path/index.js";

const T0 = 1_700_000_000_000;
beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** A peer table; `react` says what the other side does when an entry is set. */
function fakeTunnel(react: (peer: PeerStatus, tunnel: ReturnType<typeof fakeTunnel>) => void = () => {}) {
  const peers = new Map<string, PeerStatus>();
  const tunnel = {
    peers,
    setCalls: [] as PeerConfig[],
    removed: 0,
    async status() {
      return { publicKey: "hub", listenPort: 51820, peers: [...peers.values()].map((p) => ({ ...p })) };
    },
    async setPeer(config: PeerConfig) {
      tunnel.setCalls.push(config);
      const peer: PeerStatus = peers.get(config.publicKey) ?? {
        publicKey: config.publicKey,
        endpoint: null,
        allowedIps: [],
        latestHandshake: null,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: null,
      };
      peer.endpoint = config.endpoint ?? peer.endpoint;
      peer.allowedIps = config.allowedIps;
      peer.persistentKeepalive = config.persistentKeepalive ?? peer.persistentKeepalive;
      peers.set(config.publicKey, peer);
      react(peer, tunnel);
    },
    async removePeer(publicKey: string) {
      tunnel.removed++;
      peers.delete(publicKey);
    },
  };
  return tunnel;
}

const nudges: string[] = [];
const fakeNudger = (): Nudger => ({
  send: async (ip) => {
    nudges.push(ip);
  },
  close: () => {},
});

const hub = { publicKey: "hubkey", endpoints: ["192.0.2.1:51820", "198.51.100.1:51820"], meshIp: "100.64.0.1", allowedIps: [MESH_PREFIX] };

/** Shakes hands `afterMs` after a peer entry toward `endpoint` is set. */
const handshakeAt = (endpoint: string, afterMs: number) => (peer: PeerStatus) => {
  if (peer.endpoint !== endpoint) return;
  setTimeout(() => {
    peer.latestHandshake = Math.floor(Date.now() / 1000) * 1000;
    peer.rxBytes = 148;
  }, afterMs);
};

describe("direct", () => {
  it("tries the candidates in turn with keepalives on, and keeps the one a handshake came through", async () => {
    const tunnel = fakeTunnel(handshakeAt("198.51.100.1:51820", 50));
    const log: string[] = [];
    const reached = direct.reach(hub, { tunnel, log: (l) => log.push(l), nudger: fakeNudger });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await reached).toBe("198.51.100.1:51820");
    expect(tunnel.setCalls.map((c) => c.endpoint)).toEqual(["192.0.2.1:51820", "198.51.100.1:51820"]);
    expect(tunnel.setCalls.every((c) => c.persistentKeepalive === KEEPALIVE_SECONDS && c.allowedIps[0] === MESH_PREFIX)).toBe(true);
    expect(log[0]).toBe("connecting to the coordinator at 192.0.2.1:51820 or 198.51.100.1:51820");
    expect(log.at(-1)).toMatch(/^tunnel up through 198\.51\.100\.1:51820 in \d+ ms$/);
    expect(nudges).toContain("100.64.0.1");
  });

  it("leaves a tunnel that shook hands moments ago be, unless asked for a fresh one", async () => {
    const tunnel = fakeTunnel();
    await tunnel.setPeer({ publicKey: "hubkey", endpoint: "192.0.2.1:51820", allowedIps: [MESH_PREFIX] });
    (tunnel.peers.get("hubkey") as PeerStatus).latestHandshake = T0 - 1_000;
    expect(await direct.reach(hub, { tunnel, log: () => {}, nudger: fakeNudger })).toBe("192.0.2.1:51820");
    expect(tunnel.removed).toBe(0);

    const fresh = direct.reach(hub, { tunnel, log: () => {}, nudger: fakeNudger, fresh: true });
    await vi.advanceTimersByTimeAsync(CONNECT_TIMEOUT_MS + 200);
    await fresh;
    expect(tunnel.removed).toBeGreaterThan(0);
  });

  it("says that no handshake came when nothing answers within CONNECT_TIMEOUT_MS, and leaves the why to its caller", async () => {
    const tunnel = fakeTunnel();
    const log: string[] = [];
    const reached = direct.reach(hub, { tunnel, log: (l) => log.push(l), nudger: fakeNudger });
    await vi.advanceTimersByTimeAsync(CONNECT_TIMEOUT_MS + 200);
    expect(await reached).toBeUndefined();
    expect(log.at(-1)).toBe("no handshake with the coordinator through 192.0.2.1:51820, 198.51.100.1:51820 in 10 s");
  });

  it("has nothing to try without endpoints", async () => {
    const log: string[] = [];
    expect(await direct.reach({ ...hub, endpoints: [] }, { tunnel: fakeTunnel(), log: (l) => log.push(l), nudger: fakeNudger })).toBe(
      undefined,
    );
    expect(log).toEqual(["the coordinator has no endpoint to try; WireGuard waits for it to reach this agent"]);
  });

  it("follows the hub's packets to where they come from, and starts a handshake there when none came of them", async () => {
    // The hub's packets arrive from its NAT's mapping, not from a candidate.
    const tunnel = fakeTunnel((peer) => {
      if (peer.endpoint === "192.0.2.1:51820") {
        peer.rxBytes = 32;
        peer.endpoint = "203.0.113.5:40000";
      }
      if (peer.endpoint === "203.0.113.5:40000" && peer.latestHandshake === null && tunnel.setCalls.length > 1) {
        setTimeout(() => {
          peer.latestHandshake = Math.floor(Date.now() / 1000) * 1000;
        }, 20);
      }
    });
    const log: string[] = [];
    const reached = direct.reach(hub, { tunnel, log: (l) => log.push(l), nudger: fakeNudger });
    await vi.advanceTimersByTimeAsync(3_000);
    expect(await reached).toBe("203.0.113.5:40000");
    expect(tunnel.setCalls.map((c) => c.endpoint)).toEqual(["192.0.2.1:51820", "203.0.113.5:40000"]);
    expect(log).toContain("the coordinator's packets arrive from 203.0.113.5:40000 but no handshake came of them; starting one from here");
  });

  it("stops at once when its signal is aborted", async () => {
    const stop = new AbortController();
    const reached = direct.reach(hub, { tunnel: fakeTunnel(), log: () => {}, nudger: fakeNudger, signal: stop.signal });
    await vi.advanceTimersByTimeAsync(300);
    stop.abort();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await reached).toBeUndefined();
  });
});

describe("connect", () => {
  it("tries each strategy in turn until one gets through", async () => {
    const tried: string[] = [];
    const strategy = (name: string, through: string | undefined): PathStrategy => ({
      name,
      reach: async () => {
        tried.push(name);
        return through;
      },
    });
    const context = { tunnel: fakeTunnel(), log: () => {} };
    expect(await connect(hub, context, [strategy("a", undefined), strategy("b", "x:1"), strategy("c", "y:1")])).toBe("x:1");
    expect(tried).toEqual(["a", "b"]);
  });
});

describe("punch", () => {
  const agent = { publicKey: "agentkey", allowedIps: ["100.64.0.2/32"], endpoint: "203.0.113.7:41000" };

  it("sends toward a new agent from fresh peer entries, more slowly each time, until a handshake", async () => {
    const tunnel = fakeTunnel();
    await tunnel.setPeer({ publicKey: agent.publicKey, allowedIps: agent.allowedIps, endpoint: agent.endpoint });
    tunnel.setCalls.length = 0;
    const outcome = punch(tunnel, agent);
    await vi.advanceTimersByTimeAsync(300 + 250 + 500 + 10);
    // Three entries so far (at 300, 550 and 1,050 ms); then the agent's handshake lands.
    expect(tunnel.setCalls).toHaveLength(3);
    expect(tunnel.setCalls.every((c) => c.persistentKeepalive === KEEPALIVE_SECONDS && c.endpoint === agent.endpoint)).toBe(true);
    const peer = tunnel.peers.get(agent.publicKey) as PeerStatus;
    peer.latestHandshake = Date.now();
    peer.endpoint = "203.0.113.7:41001";
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await outcome).toMatch(/^handshake through 203\.0\.113\.7:41001 \d+ ms after its answer \(3 sent from here\)$/);
  });

  it("leaves a peer that heard from the agent alone, and turns keepalives on once through", async () => {
    const tunnel = fakeTunnel();
    await tunnel.setPeer({ publicKey: agent.publicKey, allowedIps: agent.allowedIps, endpoint: agent.endpoint });
    const peer = tunnel.peers.get(agent.publicKey) as PeerStatus;
    peer.rxBytes = 92;
    tunnel.setCalls.length = 0;
    const outcome = punch(tunnel, agent);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(tunnel.setCalls).toEqual([]);
    peer.latestHandshake = Date.now();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await outcome).toContain("(0 sent from here)");
    expect(tunnel.setCalls).toEqual([{ publicKey: agent.publicKey, allowedIps: agent.allowedIps, persistentKeepalive: KEEPALIVE_SECONDS }]);
  });

  it("gives up after 30 s, and at once for an agent removed meanwhile", async () => {
    const tunnel = fakeTunnel();
    await tunnel.setPeer({ publicKey: agent.publicKey, allowedIps: agent.allowedIps, endpoint: agent.endpoint });
    const outcome = punch(tunnel, agent);
    await vi.advanceTimersByTimeAsync(34_000);
    expect(await outcome).toMatch(/^no handshake within 30 s \(\d+ sent toward 203\.0\.113\.7:41000\); WireGuard keeps trying$/);

    const removed = punch(fakeTunnel(), agent);
    await vi.advanceTimersByTimeAsync(300);
    expect(await removed).toBe("the agent was removed meanwhile");
  });
});

describe("revive", () => {
  it("replaces the peer entry at the last known endpoint, keepalives on, and sends a packet through it", async () => {
    const tunnel = fakeTunnel();
    nudges.length = 0;
    await revive(
      tunnel,
      { publicKey: "agentkey", allowedIps: ["100.64.0.2/32"], endpoint: "203.0.113.7:41000", meshIp: "100.64.0.2" },
      fakeNudger,
    );
    expect(tunnel.removed).toBe(1);
    expect(tunnel.setCalls).toEqual([
      { publicKey: "agentkey", allowedIps: ["100.64.0.2/32"], endpoint: "203.0.113.7:41000", persistentKeepalive: KEEPALIVE_SECONDS },
    ]);
    expect(nudges).toEqual(["100.64.0.2"]);
  });
});

describe("direct, with a relay behind it", () => {
  it("gives way once nothing at all has come from the hub in quietMs", async () => {
    const tunnel = fakeTunnel();
    const log: string[] = [];
    const reached = direct.reach(hub, { tunnel, log: (l) => log.push(l), nudger: fakeNudger, quietMs: 1_500 });
    await vi.advanceTimersByTimeAsync(1_700);
    expect(await reached).toBeUndefined();
    expect(log.at(-1)).toMatch(/^nothing came from the coordinator through 192\.0\.2\.1:51820, 198\.51\.100\.1:51820 in 1[5-6]\d\d ms$/);
  });

  it("keeps trying for the whole window once the hub's packets arrive, however long the handshake takes", async () => {
    // Packets arrive at once, the handshake only after 3 s.
    const tunnel = fakeTunnel((peer) => {
      peer.rxBytes = 32;
    });
    setTimeout(() => {
      const peer = tunnel.peers.get("hubkey") as PeerStatus;
      peer.latestHandshake = Math.floor(Date.now() / 1000) * 1000;
    }, 3_000);
    const reached = direct.reach(hub, { tunnel, log: () => {}, nudger: fakeNudger, quietMs: 1_500 });
    await vi.advanceTimersByTimeAsync(CONNECT_TIMEOUT_MS + 200);
    expect(await reached).toBeDefined();
  });
});

describe("throughRelay", () => {
  const link = (endpoint: string, opensAfterMs: number | undefined) => ({
    endpoint,
    ready: (signal?: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        if (opensAfterMs !== undefined) setTimeout(resolve, opensAfterMs);
        signal?.addEventListener("abort", () => reject(signal.reason));
      }),
  });

  it("points a fresh hub peer at the relay's socket and waits for the handshake through it", async () => {
    const tunnel = fakeTunnel(handshakeAt("127.0.0.1:40001", 30));
    await tunnel.setPeer({ publicKey: "hubkey", endpoint: "192.0.2.1:51820", allowedIps: [MESH_PREFIX] });
    const log: string[] = [];
    const through = throughRelay(link("127.0.0.1:40001", 20), "relay.example", hub, {
      tunnel,
      log: (l) => log.push(l),
      nudger: fakeNudger,
    });
    await vi.advanceTimersByTimeAsync(500);
    expect(await through).toBe(true);
    expect(tunnel.removed).toBe(1); // no session or pending handshake toward the direct candidates is kept
    expect(tunnel.setCalls.at(-1)).toEqual({
      publicKey: "hubkey",
      endpoint: "127.0.0.1:40001",
      allowedIps: [MESH_PREFIX],
      persistentKeepalive: KEEPALIVE_SECONDS,
    });
    expect(log.at(-1)).toMatch(/^tunnel up through the relay at relay\.example in \d+ ms$/);
  });

  it("says so when the relay does not open, or no handshake comes through it", async () => {
    const log: string[] = [];
    const closed = throughRelay(link("127.0.0.1:40001", undefined), "relay.example", hub, {
      tunnel: fakeTunnel(),
      log: (l) => log.push(l),
      nudger: fakeNudger,
    });
    await vi.advanceTimersByTimeAsync(RELAY_OPEN_MS + 100);
    expect(await closed).toBe(false);
    expect(log.at(-1)).toBe("the relay at relay.example did not open in 5 s");

    const silent = throughRelay(link("127.0.0.1:40001", 0), "relay.example", hub, {
      tunnel: fakeTunnel(),
      log: (l) => log.push(l),
      nudger: fakeNudger,
    });
    await vi.advanceTimersByTimeAsync(RELAY_HANDSHAKE_MS + 200);
    expect(await silent).toBe(false);
    expect(log.at(-1)).toBe("no handshake with the coordinator through the relay at relay.example in 5 s");
  });
});

describe("probeDirect", () => {
  const relayed = "127.0.0.1:40001";
  const relayedTunnel = async (react: Parameters<typeof fakeTunnel>[0]) => {
    const tunnel = fakeTunnel(react);
    await tunnel.setPeer({ publicKey: "hubkey", endpoint: relayed, allowedIps: [MESH_PREFIX] });
    (tunnel.peers.get("hubkey") as PeerStatus).latestHandshake = T0;
    tunnel.setCalls.length = 0;
    return tunnel;
  };

  it("finds the candidate the hub answers through, keeping the tunnel's session", async () => {
    const tunnel = await relayedTunnel(() => {});
    const probes: string[] = [];
    const found = await probeDirect(
      tunnel,
      hub,
      relayed,
      async (ip) => {
        probes.push(ip);
        return (tunnel.peers.get("hubkey") as PeerStatus).endpoint === "198.51.100.1:51820";
      },
      fakeNudger,
    );
    expect(found).toBe("198.51.100.1:51820");
    expect(probes).toEqual(["100.64.0.1", "100.64.0.1"]);
    expect(tunnel.removed).toBe(0);
    expect((tunnel.peers.get("hubkey") as PeerStatus).latestHandshake).toBe(T0);
  });

  it("does not count an answer that came through the relay, and puts the peer back there", async () => {
    // The hub sent through the relay meanwhile: WireGuard followed it back.
    const tunnel = await relayedTunnel((peer) => {
      peer.endpoint = relayed;
    });
    nudges.length = 0;
    expect(await probeDirect(tunnel, hub, relayed, async () => true, fakeNudger)).toBeUndefined();
    expect(tunnel.setCalls.map((c) => c.endpoint)).toEqual(["192.0.2.1:51820", "198.51.100.1:51820", relayed]);
    expect((tunnel.peers.get("hubkey") as PeerStatus).endpoint).toBe(relayed);
    // A packet through the relay brings the hub back there too.
    expect(nudges).toEqual(["100.64.0.1"]);
  });

  it("gives up on a candidate that does not answer", async () => {
    const tunnel = await relayedTunnel(() => {});
    expect(await probeDirect(tunnel, { ...hub, endpoints: ["192.0.2.1:51820"] }, relayed, async () => false, fakeNudger)).toBeUndefined();
    expect((tunnel.peers.get("hubkey") as PeerStatus).endpoint).toBe(relayed);
    expect(PROBE_MS).toBeLessThanOrEqual(1_000); // a look holds the tunnel's traffic this long at most
  });
});

describe("pathKind", () => {
  const facts = { loopback: false, latestHandshake: null, lastHeartbeatAt: null, enrolledAt: 0, now: 1_000 };
  it("names each case", () => {
    expect(pathKind({ ...facts, loopback: true, latestHandshake: 5 })).toBe("loopback");
    expect(pathKind({ ...facts, latestHandshake: 5 })).toBe("direct");
    expect(pathKind({ ...facts, latestHandshake: 5, relayed: true })).toBe("relay");
    // A relay socket that has carried no handshake is no path yet.
    expect(pathKind({ ...facts, relayed: true, now: RELAY_NEEDED_AFTER_MS + 1 })).toBe("relay-needed");
    expect(pathKind({ ...facts, now: RELAY_NEEDED_AFTER_MS })).toBe("unknown");
    expect(pathKind({ ...facts, now: RELAY_NEEDED_AFTER_MS + 1 })).toBe("relay-needed");
    // Heard from once, a tunnel now quiet is not proof that no path exists.
    expect(pathKind({ ...facts, lastHeartbeatAt: 10, now: RELAY_NEEDED_AFTER_MS + 1 })).toBe("unknown");
  });
});
