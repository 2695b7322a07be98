/**
 * The relay's two ends (`AgentRelay`, `HubRelay` in @coral-mesh/wireguard) through a real local
 * discovery Worker (wrangler dev: workerd with the relay room): datagrams both ways for two
 * agents, each to its own socket at the hub; a refused ticket said with its code; and the Worker
 * stopped and started again (the relay dropped and back), after which both ends dial again by
 * themselves and datagrams flow. UDP sockets on loopback stand in for the WireGuard ports the
 * ends feed; the WireGuard tunnel itself through the relay is tested with the NAT matrix.
 */
import { createSocket, type Socket } from "node:dgram";
import { type LocalDiscovery, startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import {
  encodeRelayTicket,
  generateSigningKeyPair,
  meshIdFor,
  randomBytes,
  relayHeaders,
  type SigningKeyPair,
  signRelayTicket,
  signRequest,
  toBase64,
} from "@coral-mesh/sdk-proto";
import { AgentRelay, HubRelay } from "@coral-mesh/wireguard/path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** A UDP socket standing in for a WireGuard port: what it receives, and from where. */
async function fakeWireGuard(): Promise<{
  socket: Socket;
  port: number;
  received: Array<{ data: Buffer; port: number }>;
  next(): Promise<{ data: Buffer; port: number }>;
}> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const received: Array<{ data: Buffer; port: number }> = [];
  let taken = 0;
  socket.on("message", (data, from) => received.push({ data, port: from.port }));
  const next = async () => {
    const deadline = Date.now() + 15_000;
    while (received.length <= taken) {
      if (Date.now() > deadline) throw new Error("no datagram within 15 s");
      await new Promise((r) => setTimeout(r, 10));
    }
    return received[taken++] as { data: Buffer; port: number };
  };
  return { socket, port: socket.address().port, received, next };
}

// Quick to dial again; keepalives slow enough that a busy machine's late pong does not redial.
const fast = { backoffMs: () => 200, keepaliveMs: 10_000 };

describe("the relay's ends through a local discovery Worker", () => {
  let discovery: LocalDiscovery;
  let port: number;
  let keys: SigningKeyPair;
  let meshId: string;
  const logs: string[] = [];
  const log = (line: string) => logs.push(line);

  beforeAll(async () => {
    discovery = await startLocalDiscovery({ port: 0 });
    port = Number(new URL(discovery.url).port);
    keys = await generateSigningKeyPair();
    meshId = await meshIdFor(keys.publicKey);
  }, 120_000);
  afterAll(async () => {
    await discovery?.stop();
  });

  const url = () => `${discovery.url}/v1/meshes/${meshId}/relay`;
  const hubHeaders = async () => ({
    [relayHeaders.role]: "hub",
    ...(await signRequest(keys, { method: "GET", path: new URL(url()).pathname, body: "" })),
  });
  const agentHeaders = (peer: string) => async () => ({
    [relayHeaders.role]: "agent",
    [relayHeaders.ticket]: encodeRelayTicket(await signRelayTicket(keys, peer, Date.now() + 86_400_000)),
  });

  it("carries datagrams both ways, each agent to a socket of its own at the hub, and again after the Worker was away", async () => {
    const hubWg = await fakeWireGuard();
    const [wgA, wgB] = [await fakeWireGuard(), await fakeWireGuard()];
    const [keyA, keyB] = [toBase64(randomBytes(32)), toBase64(randomBytes(32))];
    const seen: Array<[string, string]> = [];
    const hub = HubRelay.open({ url: url(), headers: hubHeaders, wireguardPort: hubWg.port, log, ...fast }, (key, endpoint) =>
      seen.push([key, endpoint]),
    );
    const a = await AgentRelay.open({ url: url(), headers: agentHeaders(keyA), wireguardPort: wgA.port, log, ...fast });
    const b = await AgentRelay.open({ url: url(), headers: agentHeaders(keyB), wireguardPort: wgB.port, log, ...fast });
    try {
      await Promise.all([hub.ready(), a.ready(), b.ready()]);
      const send = (from: Socket, endpoint: string, data: Buffer) => from.send(data, Number(endpoint.split(":")[1]), "127.0.0.1");

      // Agent A's WireGuard sends to its relay endpoint; the hub's WireGuard receives it.
      const hello = randomBytes(148);
      send(wgA.socket, a.endpoint, Buffer.from(hello));
      const atHub = await hubWg.next();
      expect(new Uint8Array(atHub.data)).toEqual(hello);
      const endpointA = hub.endpoints().get(keyA);
      expect(endpointA).toBe(`127.0.0.1:${atHub.port}`);
      expect(seen).toEqual([[keyA, endpointA]]);

      // B's arrives from another socket.
      send(wgB.socket, b.endpoint, Buffer.from("from b"));
      const fromB = await hubWg.next();
      expect(fromB.data.toString()).toBe("from b");
      expect(fromB.port).not.toBe(atHub.port);

      // The hub's WireGuard answers each from the socket it heard it on; each agent gets its own.
      hubWg.socket.send(Buffer.from("to a"), atHub.port, "127.0.0.1");
      hubWg.socket.send(Buffer.from("to b"), fromB.port, "127.0.0.1");
      const [gotA, gotB] = [await wgA.next(), await wgB.next()];
      expect(gotA.data.toString()).toBe("to a");
      expect(gotB.data.toString()).toBe("to b");
      expect(gotA.port).toBe(Number(a.endpoint.split(":")[1]));
      expect(a.counters).toMatchObject({ datagramsUp: 1, datagramsDown: 1 });

      // The relay goes away and comes back: both ends dial again by themselves.
      await discovery.stop();
      discovery = await startLocalDiscovery({ port });
      await new Promise((r) => setTimeout(r, 500));
      await Promise.all([hub.ready(), a.ready(), b.ready()]);
      const deadline = Date.now() + 30_000;
      // Datagrams sent while an end is still dialling are lost, as UDP's are; WireGuard resends.
      const before = hubWg.received.length;
      while (hubWg.received.length === before) {
        if (Date.now() > deadline) throw new Error(`nothing came through after the Worker came back:\n${logs.join("\n")}`);
        send(wgA.socket, a.endpoint, Buffer.from("again"));
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(hubWg.received.at(-1)?.data.toString()).toBe("again");
      expect(hub.counters.connects).toBeGreaterThanOrEqual(2);
      expect(a.counters.connects).toBeGreaterThanOrEqual(2);
    } finally {
      for (const end of [hub, a, b]) end.close();
      for (const s of [hubWg, wgA, wgB]) s.socket.close();
    }
  }, 120_000);

  it("says why the room refused it, with the code", async () => {
    const other = await generateSigningKeyPair();
    const wg = await fakeWireGuard();
    const lines: string[] = [];
    const agent = await AgentRelay.open({
      url: url(),
      headers: async () => ({
        [relayHeaders.role]: "agent",
        [relayHeaders.ticket]: encodeRelayTicket(await signRelayTicket(other, toBase64(randomBytes(32)), Date.now() + 60_000)),
      }),
      wireguardPort: wg.port,
      log: (line) => lines.push(line),
      ...fast,
    });
    try {
      const deadline = Date.now() + 15_000;
      while (!lines.some((l) => l.includes("relay_ticket_invalid"))) {
        if (Date.now() > deadline) throw new Error(`no refusal logged:\n${lines.join("\n")}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(lines.find((l) => l.includes("relay_ticket_invalid"))).toMatch(
        /^relay: refused \(403 relay_ticket_invalid\): The relay ticket is refused: its key is not the one this mesh id was derived from/,
      );
      expect(agent.state).toBe("connecting");
    } finally {
      agent.close();
      wg.socket.close();
    }
  }, 60_000);
});
