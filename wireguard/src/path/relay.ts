/**
 * The relay's two ends (docs/discovery.md, "Relay"): WireGuard's datagrams carried over a
 * WebSocket to the mesh's relay room in its discovery Worker. WireGuard itself is not touched:
 * each end gives it a local UDP socket to talk to, so kernel WireGuard and wireguard-go work
 * alike, and it stays end to end (the room sees ciphertext only).
 *
 * - The agent's end, `AgentRelay`: one socket on 127.0.0.1 that the agent's hub peer points at;
 *   what WireGuard sends there goes up the WebSocket, what comes down goes to WireGuard's port.
 * - The hub's end, `HubRelay`: one WebSocket for all relayed agents, and a socket on 127.0.0.1
 *   per agent, made when its first datagram arrives. WireGuard learns each agent's endpoint (the
 *   socket) from that datagram, as it learns any roaming peer's, so the hub sets nothing.
 *
 * Both reconnect by themselves, with backoff, until closed, and keep the WebSocket alive with a
 * text `ping` the room's runtime answers without waking the room.
 */
import { createSocket, type Socket } from "node:dgram";
import { WebSocket } from "ws";

/** How the WebSocket is opened: the room's URL and the headers that let this end in. */
export interface RelayDial {
  /** `https://…/v1/meshes/<meshId>/relay` (http and https become ws and wss). */
  url: string;
  /** Made afresh for each connection: a hub's signature is good once. */
  headers: () => Promise<Record<string, string>>;
}

export interface RelayOptions extends RelayDial {
  /** The UDP port of the local WireGuard interface. */
  wireguardPort: number;
  log?: (line: string) => void;
  /**
   * For tests: ms between a close and the next try, by attempt, in place of the default (0.5 s
   * doubling to 30 s, and a minute or the room's retry-after after a refusal or a replacement).
   */
  backoffMs?: (attempt: number) => number;
  /** ms between keepalive pings; the socket is dropped and dialled again when no pong comes within as long again. */
  keepaliveMs?: number;
  /** Called each time the WebSocket opens, with how many times it has (1 the first time). */
  onOpen?: (connects: number) => void;
  /** How fast this end may send (default: RELAY_PACE for its role). */
  pace?: { burst: number; perSecond: number };
}

export type RelayState = "connecting" | "open" | "closed";

/** Counters of one end, for status and the bench. */
export interface RelayCounters {
  datagramsUp: number;
  datagramsDown: number;
  bytesUp: number;
  bytesDown: number;
  connects: number;
  /** Datagrams not sent: over the pace, or behind a slow link. */
  dropped: number;
}

const defaultBackoff = (attempt: number) => Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
const CLOSE_CODES: Record<number, string> = {
  4000: "replaced by a newer connection",
  4001: "a frame the room refused",
  4002: "the mesh's relay budget for this minute is spent",
};
/**
 * After the room replaced this end or found it over budget, or refused it (a bad ticket, a
 * signature the Worker does not take), dialling again at once would only do it again, each try a
 * billed request: these wait at least this long.
 */
const SLOW_RETRY_MS = 60_000;
/** Relayed agents the hub's end makes sockets for, at most: the room's own limit (relayLimits.maxAgentsPerMesh). */
const MAX_HUB_PEERS = 256;
/** Datagrams queued behind a slow link past this are dropped, as UDP's are: WireGuard sends again. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

/**
 * How fast each end sends, in datagrams: a burst, then a steady rate. The room counts every
 * message of the mesh, both ways, against a budget of 30,000 a minute and closes an agent that
 * goes past it (docs/discovery.md, "Limits"), which would cut it off for a minute. Paced, an
 * agent and its hub cannot get there alone: the agent sends at most 3,000 + 60 × 200 = 15,000 in
 * a minute and the hub 3,000 + 60 × 150 = 12,000 (it mostly acknowledges). A backlog of 1 MiB
 * (about 800 datagrams up, 300 to 400 down) goes in one burst; past the burst, datagrams wait
 * their turn in a short queue (RELAY_QUEUE), so TCP sees a slower link rather than losses, and
 * a longer backlog flows at about 280 kB/s.
 */
export const RELAY_PACE = {
  agent: { burst: 3_000, perSecond: 200 },
  hub: { burst: 3_000, perSecond: 150 },
} as const;
/** Datagrams waiting for the pace past this are dropped, as a full router queue drops them. */
export const RELAY_QUEUE = 128;

/** A token bucket: `take()` says whether one more datagram may go now. */
export class Pace {
  private tokens: number;
  private at: number;

  constructor(
    private readonly limit: { burst: number; perSecond: number },
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = limit.burst;
    this.at = now();
  }

  take(): boolean {
    this.fill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** ms until the next datagram may go. */
  wait(): number {
    this.fill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.limit.perSecond);
  }

  private fill(): void {
    const now = this.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.at) / 1000) * this.limit.perSecond);
    this.at = now;
  }
}

/** A WebSocket to the room that dials again whenever it drops, until closed. */
class RelaySocket {
  state: RelayState = "connecting";
  readonly counters: RelayCounters = { datagramsUp: 0, datagramsDown: 0, bytesUp: 0, bytesDown: 0, connects: 0, dropped: 0 };
  private readonly pace: Pace;
  /** Datagrams waiting for the pace. */
  private waiting: Uint8Array[] = [];
  private draining: NodeJS.Timeout | undefined;
  private ws: WebSocket | undefined;
  private attempt = 0;
  /** The next dial waits at least this long (set by a refusal or a close that asks for patience). */
  private holdOffMs = 0;
  private retry: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private opened: Array<() => void> = [];
  private readonly log: (line: string) => void;

  constructor(
    private readonly options: RelayOptions,
    private readonly onMessage: (data: Buffer) => void,
    role: keyof typeof RELAY_PACE,
  ) {
    this.log = options.log ?? (() => {});
    this.pace = new Pace(options.pace ?? RELAY_PACE[role]);
    void this.dial();
  }

  /** Resolves once the WebSocket is open (at once if it is). */
  ready(signal?: AbortSignal): Promise<void> {
    if (this.state === "open") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(new Error("the relay connection is closed"));
    return new Promise((resolve, reject) => {
      const aborted = () => reject(signal?.reason);
      signal?.addEventListener("abort", aborted, { once: true });
      this.opened.push(() => {
        signal?.removeEventListener("abort", aborted);
        resolve();
      });
    });
  }

  send(data: Uint8Array): void {
    // WireGuard retransmits what is lost, so a datagram that cannot go (soon) is dropped.
    if (this.state !== "open" || !this.ws) return;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES || this.waiting.length >= RELAY_QUEUE) {
      this.counters.dropped++;
      return;
    }
    if (this.waiting.length === 0 && this.pace.take()) {
      this.ws.send(data);
      return;
    }
    this.waiting.push(data);
    this.drainLater();
  }

  /** Sends what waits for the pace as the pace allows. */
  private drainLater(): void {
    if (this.draining) return;
    this.draining = setTimeout(() => {
      this.draining = undefined;
      while (this.waiting.length > 0 && this.state === "open" && this.ws && this.pace.take())
        this.ws.send(this.waiting.shift() as Uint8Array);
      if (this.waiting.length > 0 && this.state === "open") this.drainLater();
    }, this.pace.wait());
  }

  close(): void {
    this.state = "closed";
    clearTimeout(this.draining);
    this.waiting = [];
    clearTimeout(this.retry);
    clearInterval(this.keepalive);
    this.ws?.close(1000);
    this.ws?.removeAllListeners();
    this.ws?.on("error", () => {});
    for (const resolve of this.opened.splice(0)) resolve();
  }

  private async dial(): Promise<void> {
    if (this.state === "closed") return;
    let headers: Record<string, string>;
    try {
      headers = await this.options.headers();
    } catch (error) {
      this.log(`relay: cannot make the connection's credentials: ${(error as Error).message}`);
      this.again();
      return;
    }
    if ((this.state as RelayState) === "closed") return; // closed while the headers were made
    const url = this.options.url.replace(/^http/, "ws");
    // No compression: ciphertext does not compress, and deflating it cost each end four times the CPU.
    const ws = new WebSocket(url, { headers, handshakeTimeout: 10_000, perMessageDeflate: false });
    this.ws = ws;
    ws.binaryType = "nodebuffer";
    ws.on("open", () => {
      this.state = "open";
      this.attempt = 0;
      this.counters.connects++;
      for (const resolve of this.opened.splice(0)) resolve();
      this.startKeepalive(ws);
      this.options.onOpen?.(this.counters.connects);
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) this.onMessage(data as Buffer);
      else if (String(data) === "pong") (ws as WebSocket & { alive?: boolean }).alive = true;
    });
    ws.on("unexpected-response", (_request, response) => {
      // Discovery is not trusted: a few kB of its answer at most, and only printable ASCII of it in the log.
      let body = "";
      response.on("data", (chunk: Buffer) => {
        if (body.length < 4_096) body += chunk.toString().slice(0, 4_096 - body.length);
      });
      response.on("end", () => {
        const code = /"code":"([a-z_]+)"/.exec(body)?.[1];
        const message = /"message":"((?:[^"\\]|\\.)*)"/
          .exec(body)?.[1]
          ?.replace(/[^\x20-\x7e]/g, " ")
          .slice(0, 300);
        this.log(`relay: refused (${response.statusCode}${code ? ` ${code}` : ""})${message ? `: ${message}` : ""}`);
        const retryAfter = Number(response.headers["retry-after"]);
        this.holdOffMs = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : SLOW_RETRY_MS;
        ws.terminate();
      });
    });
    ws.on("error", (error) => {
      if (this.state !== "closed") this.log(`relay: ${error.message}`);
    });
    ws.on("close", (code) => {
      clearInterval(this.keepalive);
      if (this.state === "closed" || this.ws !== ws) return;
      this.state = "connecting";
      this.waiting = []; // WireGuard sends again what matters, through the next connection
      if (CLOSE_CODES[code]) {
        this.log(`relay: the room closed the connection: ${CLOSE_CODES[code]}`);
        this.holdOffMs = SLOW_RETRY_MS;
      }
      this.again();
    });
  }

  private again(): void {
    if (this.state === "closed") return;
    const backoff = (this.options.backoffMs ?? defaultBackoff)(this.attempt++);
    const wait = Math.max(backoff, this.options.backoffMs ? 0 : this.holdOffMs);
    this.holdOffMs = 0;
    this.retry = setTimeout(() => void this.dial(), wait);
    this.retry.unref?.();
  }

  private startKeepalive(ws: WebSocket & { alive?: boolean }): void {
    const every = this.options.keepaliveMs ?? 25_000;
    ws.alive = true;
    this.keepalive = setInterval(() => {
      if (!ws.alive) {
        this.log(`relay: no answer to a keepalive in ${every} ms; dialling again`);
        ws.terminate();
        return;
      }
      ws.alive = false;
      ws.send("ping");
    }, every);
    this.keepalive.unref?.();
  }
}

/**
 * Whether a peer's endpoint is one of a relay end's local sockets (both ends bind them on
 * 127.0.0.1, where no WireGuard peer is otherwise ever found), whether or not the end still has it.
 */
export function isRelaySocket(endpoint: string | null | undefined): boolean {
  return endpoint?.startsWith("127.0.0.1:") ?? false;
}

function bindLoopback(log: (line: string) => void): Promise<Socket> {
  const socket = createSocket("udp4");
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      socket.off("error", reject);
      // A failed send to WireGuard's port is a lost datagram, not a crash.
      socket.on("error", (error) => log(`relay: local socket: ${error.message}`));
      resolve(socket);
    });
  });
}

/** The agent's end: point the hub peer's endpoint at `endpoint` and WireGuard goes through the relay. */
export class AgentRelay {
  private constructor(
    private readonly udp: Socket,
    private readonly socket: RelaySocket,
  ) {}

  static async open(options: RelayOptions): Promise<AgentRelay> {
    const udp = await bindLoopback(options.log ?? (() => {}));
    const link = new RelaySocket(
      options,
      (datagram) => {
        link.counters.datagramsDown++;
        link.counters.bytesDown += datagram.length;
        udp.send(datagram, options.wireguardPort, "127.0.0.1");
      },
      "agent",
    );
    udp.on("message", (datagram, from) => {
      // Only the local WireGuard's datagrams go up.
      if (from.port !== options.wireguardPort) return;
      link.counters.datagramsUp++;
      link.counters.bytesUp += datagram.length;
      link.send(datagram);
    });
    return new AgentRelay(udp, link);
  }

  /** `127.0.0.1:port`, the endpoint to give the hub peer. */
  get endpoint(): string {
    return `127.0.0.1:${this.udp.address().port}`;
  }

  get state(): RelayState {
    return this.socket.state;
  }

  get counters(): Readonly<RelayCounters> {
    return this.socket.counters;
  }

  ready(signal?: AbortSignal): Promise<void> {
    return this.socket.ready(signal);
  }

  close(): void {
    this.socket.close();
    this.udp.close();
  }
}

/** One relayed agent at the hub: its local socket, and when it was last heard. */
interface HubPeerSocket {
  udp: Socket;
  lastSeen: number;
}

/** The hub's end: every relayed agent's datagrams, each given to WireGuard from a socket of its own. */
export class HubRelay {
  private readonly peers = new Map<string, HubPeerSocket>();
  private readonly socket: RelaySocket;
  private readonly sweep: NodeJS.Timeout;
  private closed = false;

  private constructor(
    private readonly options: RelayOptions & { idleMs?: number; now?: () => number },
    private readonly onPeer: (key: string, endpoint: string) => void,
  ) {
    this.socket = new RelaySocket(options, (frame) => void this.fromRoom(frame), "hub");
    const idle = options.idleMs ?? 10 * 60_000;
    this.sweep = setInterval(() => this.forgetIdle(idle), Math.min(idle, 60_000));
    this.sweep.unref?.();
  }

  /**
   * `onPeer` hears of each agent the first time its datagrams arrive, with the local endpoint
   * WireGuard will see it at (for saying which agents are relayed).
   */
  static open(
    options: RelayOptions & { idleMs?: number; now?: () => number },
    onPeer: (key: string, endpoint: string) => void = () => {},
  ): HubRelay {
    return new HubRelay(options, onPeer);
  }

  get state(): RelayState {
    return this.socket.state;
  }

  get counters(): Readonly<RelayCounters> {
    return this.socket.counters;
  }

  /** The local endpoint of each relayed agent, by WireGuard key. */
  endpoints(): Map<string, string> {
    return new Map([...this.peers].map(([key, peer]) => [key, `127.0.0.1:${peer.udp.address().port}`]));
  }

  ready(signal?: AbortSignal): Promise<void> {
    return this.socket.ready(signal);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweep);
    this.socket.close();
    for (const peer of this.peers.values()) peer.udp.close();
    this.peers.clear();
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private async fromRoom(frame: Buffer): Promise<void> {
    if (frame.length <= 32) return;
    const key = frame.subarray(0, 32).toString("base64");
    const datagram = frame.subarray(32);
    this.socket.counters.datagramsDown++;
    this.socket.counters.bytesDown += datagram.length;
    let peer = this.peers.get(key);
    if (!peer) {
      // The room lets in at most this many agents; more keys than that is a room not to be believed.
      if (this.peers.size >= MAX_HUB_PEERS) return;
      const udp = await bindLoopback(this.options.log ?? (() => {}));
      const raced = this.peers.get(key);
      if (this.closed) {
        udp.close();
        return;
      }
      if (raced) {
        udp.close();
        peer = raced;
      } else {
        peer = { udp, lastSeen: this.now() };
        this.peers.set(key, peer);
        const header = Buffer.from(key, "base64");
        udp.on("message", (reply, from) => {
          if (from.port !== this.options.wireguardPort) return;
          const entry = this.peers.get(key);
          if (entry) entry.lastSeen = this.now();
          this.socket.counters.datagramsUp++;
          this.socket.counters.bytesUp += reply.length;
          this.socket.send(Buffer.concat([header, reply]));
        });
        this.onPeer(key, `127.0.0.1:${udp.address().port}`);
      }
    }
    peer.lastSeen = this.now();
    peer.udp.send(datagram, this.options.wireguardPort, "127.0.0.1");
  }

  private forgetIdle(idleMs: number): void {
    const now = this.now();
    for (const [key, peer] of this.peers) {
      if (now - peer.lastSeen < idleMs) continue;
      peer.udp.close();
      this.peers.delete(key);
    }
  }
}
