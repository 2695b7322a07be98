/**
 * The relay room in workerd, through the Worker's own fetch handler: who may connect (the hub
 * with a signed request, an agent with a ticket), datagrams forwarded both ways unread, and the
 * bounds (datagram size, agents per mesh, a newer connection replacing an older).
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import {
  encodeRelayTicket,
  fromBase64,
  hubFrame,
  randomBytes,
  relayHeaders,
  relayLimits,
  signRelayTicket,
  signRequest,
  splitHubFrame,
  toBase64,
} from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import worker from "../src/index.js";
import { relayCloseCodes } from "../src/relay/room.js";
import { dispatch, expectError, freshAddress, newMesh, type TestMesh, wireguardKey } from "./helpers.js";

interface Socket {
  ws: WebSocket;
  /** Binary messages received, in order. */
  received: Uint8Array[];
  closed: Promise<{ code: number; reason: string }>;
  next(): Promise<Uint8Array>;
}

async function open(path: string, headers: Record<string, string>): Promise<Response> {
  const request = new Request(`https://discovery.test${path}`, {
    headers: { upgrade: "websocket", "cf-connecting-ip": freshAddress(), ...headers },
  });
  return worker.fetch(request as Request<unknown, IncomingRequestCfProperties>, env, createExecutionContext());
}

function accept(response: Response): Socket {
  const ws = response.webSocket;
  if (response.status !== 101 || !ws) throw new Error(`expected a WebSocket, got ${response.status}`);
  ws.binaryType = "arraybuffer";
  ws.accept();
  const received: Uint8Array[] = [];
  const waiters: Array<() => void> = [];
  ws.addEventListener("message", (event) => {
    if (typeof event.data !== "string") received.push(new Uint8Array(event.data as ArrayBuffer));
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason })),
  );
  let taken = 0;
  const next = async () => {
    const deadline = Date.now() + 5_000;
    while (received.length <= taken) {
      if (Date.now() > deadline) throw new Error("no message within 5 s");
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return received[taken++] as Uint8Array;
  };
  return { ws, received, closed, next };
}

const relayPath = (mesh: TestMesh) => `/v1/meshes/${mesh.meshId}/relay`;

async function hub(mesh: TestMesh): Promise<Socket> {
  const signed = await signRequest(mesh.keys, { method: "GET", path: relayPath(mesh), body: "" });
  return accept(await open(relayPath(mesh), { [relayHeaders.role]: "hub", ...signed }));
}

async function agent(mesh: TestMesh, peer = wireguardKey(), expiresAt = Date.now() + 86_400_000): Promise<Socket & { peer: string }> {
  const ticket = encodeRelayTicket(await signRelayTicket(mesh.keys, peer, expiresAt));
  return Object.assign(accept(await open(relayPath(mesh), { [relayHeaders.role]: "agent", [relayHeaders.ticket]: ticket })), { peer });
}

async function refused(response: Response, status: number, code: string): Promise<void> {
  const text = await response.text();
  await expectError(
    { response: new Response(text, { status: response.status }), request: new Request("https://x"), json: async () => JSON.parse(text) },
    status,
    code,
  );
}

describe("the relay room", () => {
  it("forwards an agent's datagrams to the hub with the agent's key, and the hub's back to that agent only", async () => {
    const mesh = await newMesh();
    const theHub = await hub(mesh);
    const a = await agent(mesh);
    const b = await agent(mesh);

    const datagram = randomBytes(148); // a WireGuard handshake initiation's size
    a.ws.send(datagram);
    const frame = splitHubFrame(await theHub.next());
    expect(frame && toBase64(frame.peer)).toBe(a.peer);
    expect(frame?.datagram).toEqual(datagram);

    const reply = randomBytes(92);
    theHub.ws.send(hubFrame(fromBase64(b.peer) as Uint8Array, reply));
    expect(await b.next()).toEqual(reply);
    theHub.ws.send(hubFrame(fromBase64(a.peer) as Uint8Array, reply.subarray(0, 40)));
    expect(await a.next()).toEqual(reply.subarray(0, 40));
    expect(b.received).toHaveLength(1);
    for (const s of [theHub, a, b]) s.ws.close(1000);
  });

  it("keeps meshes apart: a hub hears only its own mesh's agents", async () => {
    const [one, two] = [await newMesh(), await newMesh()];
    const hubOne = await hub(one);
    const hubTwo = await hub(two);
    const a = await agent(two);
    a.ws.send(randomBytes(32));
    expect(splitHubFrame(await hubTwo.next())?.peer).toEqual(fromBase64(a.peer));
    await new Promise((r) => setTimeout(r, 200));
    expect(hubOne.received).toHaveLength(0);
    for (const s of [hubOne, hubTwo, a]) s.ws.close(1000);
  });

  it("lets only the hub, with a signature, and agents with a ticket of this mesh in", async () => {
    const mesh = await newMesh();
    const other = await newMesh();
    const path = relayPath(mesh);
    await refused(await open(path, { [relayHeaders.role]: "hub" }), 401, "signature_missing");
    const signedByOther = await signRequest(other.keys, { method: "GET", path, body: "" });
    await refused(await open(path, { [relayHeaders.role]: "hub", ...signedByOther }), 403, "mesh_key_mismatch");
    await refused(await open(path, { [relayHeaders.role]: "agent" }), 401, "relay_ticket_missing");
    const foreign = encodeRelayTicket(await signRelayTicket(other.keys, wireguardKey(), Date.now() + 60_000));
    await refused(await open(path, { [relayHeaders.role]: "agent", [relayHeaders.ticket]: foreign }), 403, "relay_ticket_invalid");
    const expired = encodeRelayTicket(await signRelayTicket(mesh.keys, wireguardKey(), Date.now() - 1));
    await refused(await open(path, { [relayHeaders.role]: "agent", [relayHeaders.ticket]: expired }), 403, "relay_ticket_expired");
    const forever = encodeRelayTicket(await signRelayTicket(mesh.keys, wireguardKey(), Date.now() + relayLimits.maxTicketMs + 60_000));
    await refused(await open(path, { [relayHeaders.role]: "agent", [relayHeaders.ticket]: forever }), 403, "relay_ticket_invalid");
    // A ticket whose peer was changed after signing.
    const ticket = await signRelayTicket(mesh.keys, wireguardKey(), Date.now() + 60_000);
    const altered = encodeRelayTicket({ ...ticket, peer: wireguardKey() });
    await refused(await open(path, { [relayHeaders.role]: "agent", [relayHeaders.ticket]: altered }), 403, "relay_ticket_invalid");
    await refused(await open(path, { [relayHeaders.role]: "agent", [relayHeaders.ticket]: "not-a-ticket" }), 403, "relay_ticket_invalid");
    await refused(await open(path, { [relayHeaders.role]: "watcher" }), 400, "relay_role_invalid");
    // Not a WebSocket at all.
    const plain = await dispatch(new Request(`https://discovery.test${path}`, { headers: { "cf-connecting-ip": freshAddress() } }));
    await expectError(plain, 426, "relay_upgrade_required");
    const post = await dispatch(
      new Request(`https://discovery.test${path}`, { method: "POST", headers: { "cf-connecting-ip": freshAddress() } }),
    );
    await expectError(post, 405, "method_not_allowed");
  });

  it("a signed hub request is good once: replayed, it is refused", async () => {
    const mesh = await newMesh();
    const signed = await signRequest(mesh.keys, { method: "GET", path: relayPath(mesh), body: "" });
    const first = accept(await open(relayPath(mesh), { [relayHeaders.role]: "hub", ...signed }));
    await refused(await open(relayPath(mesh), { [relayHeaders.role]: "hub", ...signed }), 401, "signature_replayed");
    first.ws.close(1000);
  });

  it("a newer connection of the same hub or agent replaces the older, which is told why", async () => {
    const mesh = await newMesh();
    const oldHub = await hub(mesh);
    const newHub = await hub(mesh);
    expect((await oldHub.closed).code).toBe(relayCloseCodes.replaced);
    const peer = wireguardKey();
    const oldAgent = await agent(mesh, peer);
    const newAgent = await agent(mesh, peer);
    expect((await oldAgent.closed).code).toBe(relayCloseCodes.replaced);
    newAgent.ws.send(randomBytes(64));
    expect(toBase64(splitHubFrame(await newHub.next())?.peer as Uint8Array)).toBe(peer);
    newHub.ws.send(hubFrame(fromBase64(peer) as Uint8Array, randomBytes(16)));
    expect(await newAgent.next()).toHaveLength(16);
    for (const s of [newHub, newAgent]) s.ws.close(1000);
  });

  it("closes a connection that sends a datagram larger than WireGuard's, or a hub frame with no key", async () => {
    const mesh = await newMesh();
    const theHub = await hub(mesh);
    const a = await agent(mesh);
    a.ws.send(new Uint8Array(relayLimits.maxDatagramBytes + 1));
    expect((await a.closed).code).toBe(relayCloseCodes.badFrame);
    theHub.ws.send(new Uint8Array(20));
    expect((await theHub.closed).code).toBe(relayCloseCodes.badFrame);
    expect(theHub.received).toHaveLength(0);
  });

  it("closes a connection that speaks text other than ping", async () => {
    const mesh = await newMesh();
    const a = await agent(mesh);
    a.ws.send("hello");
    expect((await a.closed).code).toBe(relayCloseCodes.badFrame);
  });

  it("takes at most the mesh's number of messages a minute, whatever their size, and lets go of the agent past it", async () => {
    const mesh = await newMesh();
    const theHub = await hub(mesh);
    const a = await agent(mesh);
    const one = new Uint8Array(1);
    for (let i = 0; i <= relayLimits.maxMessagesPerMinute; i++) a.ws.send(one);
    expect((await a.closed).code).toBe(relayCloseCodes.overBudget);
    // All that was taken reaches the hub, and nothing past the budget.
    const deadline = Date.now() + 90_000;
    while (theHub.received.length < relayLimits.maxMessagesPerMinute && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 100));
    expect(theHub.received.length).toBe(relayLimits.maxMessagesPerMinute);
    theHub.ws.close(1000);
  }, 180_000);

  it("admits at most the mesh's number of agents at once", async () => {
    const mesh = await newMesh();
    const agents: Socket[] = [];
    for (let i = 0; i < relayLimits.maxAgentsPerMesh; i++) agents.push(await agent(mesh));
    const ticket = encodeRelayTicket(await signRelayTicket(mesh.keys, wireguardKey(), Date.now() + 60_000));
    const busy = await open(relayPath(mesh), { [relayHeaders.role]: "agent", [relayHeaders.ticket]: ticket });
    expect(busy.headers.get("retry-after")).toBe("60");
    await refused(busy, 429, "relay_busy");
    for (const s of agents) s.ws.close(1000);
  }, 60_000);
});
