/**
 * One mesh's relay room: a Durable Object (one per mesh id) that both ends of a relayed path
 * reach over a WebSocket, and that forwards WireGuard datagrams it cannot read between the hub
 * and each agent (frames in `@coral-mesh/sdk-proto`'s relay.ts). The Worker checks who connects
 * before the room sees them; the room keeps the bounds.
 *
 * The sockets are accepted with the hibernation API, so an idle room is evicted from memory and
 * costs nothing while its sockets stay open; keepalive pings are answered without waking it.
 */

import { DurableObject } from "cloudflare:workers";
import { CoralError, fromBase64, hubFrame, peerKeyText, relayLimits, splitHubFrame } from "@coral-mesh/sdk-proto";
import type { Env } from "../env.js";

/** Set by the Worker on the request it forwards, after it checked the signature or ticket. */
export const roomHeaders = { role: "coral-relay-checked-role", peer: "coral-relay-checked-peer" } as const;

const HUB = "hub";
const AGENT = "agent";
const peerTag = (key: string) => `peer:${key}`;

/** Close codes a relay client reads (4000–4999 are the application's). */
export const relayCloseCodes = {
  /** Another connection of the same hub or agent took this one's place. */
  replaced: 4000,
  /** A frame larger than a datagram may be, one to the hub without a key, or text other than `ping`. */
  badFrame: 4001,
  /** The mesh's relay took as many messages this minute as it may. */
  overBudget: 4002,
} as const;

export class RelayRoom extends DurableObject<Env> {
  /**
   * Bytes forwarded in the current minute. Held in memory: the room is evicted only after it has
   * been idle, so a count lost with it was a small one, and the bound holds while traffic lasts.
   */
  private minute = { start: 0, bytes: 0, messages: 0 };
  /** Datagrams dropped at the bound, by minute, for the log. */
  private dropped = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  override async fetch(request: Request): Promise<Response> {
    const role = request.headers.get(roomHeaders.role);
    const peer = request.headers.get(roomHeaders.peer) ?? "";
    if (role !== HUB && role !== AGENT) return errorResponse(new CoralError("relay_role_invalid", "Unchecked relay connection."));
    const tags = role === HUB ? [HUB] : [AGENT, peerTag(peer)];
    const replacing = this.ctx.getWebSockets(tags[tags.length - 1]);
    if (role === AGENT && replacing.length === 0 && this.ctx.getWebSockets(AGENT).length >= relayLimits.maxAgentsPerMesh) {
      return errorResponse(
        new CoralError(
          "relay_busy",
          `This mesh's relay already has ${relayLimits.maxAgentsPerMesh} agents connected; the agent keeps trying a direct path and retries later.`,
          { headers: { "retry-after": "60" } },
        ),
      );
    }
    for (const old of replacing) old.close(relayCloseCodes.replaced, "replaced by a newer connection");
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, tags);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(socket: WebSocket, message: ArrayBuffer | string): Promise<void> {
    // "ping", the clients' keepalive, is answered without waking the room; no other text is spoken.
    if (typeof message === "string") {
      socket.close(relayCloseCodes.badFrame, "the relay takes binary datagrams, and text only as ping");
      return;
    }
    const tags = this.ctx.getTags(socket);
    const bytes = new Uint8Array(message);
    if (!this.count()) {
      // Every message is billed, dropped or not: an agent past the budget is let go.
      if (tags[0] !== HUB) socket.close(relayCloseCodes.overBudget, "over the mesh's relay budget for this minute");
      return;
    }
    if (tags[0] === HUB) {
      const frame = splitHubFrame(bytes);
      if (!frame || frame.datagram.length > relayLimits.maxDatagramBytes) {
        socket.close(relayCloseCodes.badFrame, "a hub frame is a 32-byte key and a datagram of at most 2,048 bytes");
        return;
      }
      // The newest: one it replaced may be listed until its close completes.
      const agent = this.ctx.getWebSockets(peerTag(peerKeyText(frame.peer))).at(-1);
      if (agent && this.admit(frame.datagram.length)) agent.send(frame.datagram);
      return;
    }
    if (bytes.length > relayLimits.maxDatagramBytes) {
      socket.close(relayCloseCodes.badFrame, "a datagram is at most 2,048 bytes");
      return;
    }
    const peer = fromBase64(tags[1]?.slice("peer:".length) ?? "");
    const hub = this.ctx.getWebSockets(HUB).at(-1);
    if (!hub || !peer || !this.admit(bytes.length)) return;
    hub.send(hubFrame(peer, bytes));
  }

  override async webSocketClose(socket: WebSocket, code: number, reason: string): Promise<void> {
    // The other end's close, answered; 1005 (no code) cannot be sent back.
    socket.close(code === 1005 || code === 1006 ? 1000 : code, reason);
  }

  /** Counts a message taken; false past this minute's number of messages. */
  private count(): boolean {
    this.roll();
    if (this.minute.messages >= relayLimits.maxMessagesPerMinute) {
      this.dropped++;
      return false;
    }
    this.minute.messages++;
    return true;
  }

  /** A new minute starts the counts again. */
  private roll(): void {
    const now = Date.now();
    if (now - this.minute.start < 60_000) return;
    if (this.dropped > 0) console.warn(`relay: dropped ${this.dropped} datagrams over the mesh's budget for a minute`);
    this.minute = { start: now, bytes: 0, messages: 0 };
    this.dropped = 0;
  }

  /** Whether `bytes` more fit in this minute's budget. */
  private admit(bytes: number): boolean {
    this.roll();
    if (this.minute.bytes + bytes > relayLimits.maxBytesPerMinute) {
      this.dropped++;
      return false;
    }
    this.minute.bytes += bytes;
    return true;
  }
}

function errorResponse(error: CoralError): Response {
  return Response.json(error.toBody("relay"), { status: error.status, headers: error.headers });
}
