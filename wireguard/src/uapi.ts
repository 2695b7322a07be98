/**
 * wireguard-go's configuration protocol (https://www.wireguard.com/xplatform/): `get=1` and
 * `set=1` requests over the UNIX socket it serves for each interface, the same requests `wg`
 * makes. A request on a connection kept open costs about 0.1 ms of CPU (0.4 ms with a new
 * connection each time), where spawning `wg` costs about ten: that is what lets an agent poll
 * for its handshake every few milliseconds. The kernel module speaks netlink instead, for
 * which `wg` is still used.
 */
import { createConnection, type Socket } from "node:net";
import type { InterfaceStatus, PeerStatus } from "./dump.js";
import { publicKeyOf } from "./keys.js";

export const UAPI_DIR = "/var/run/wireguard";

/** The socket wireguard-go serves for the interface `name`. */
export function uapiSocket(name: string): string {
  return `${UAPI_DIR}/${name}.sock`;
}

export class UapiError extends Error {
  override readonly name = "UapiError";
  constructor(
    message: string,
    /** The errno wireguard-go answered with, or the socket error's code (ENOENT, ECONNREFUSED). */
    readonly code: string,
    /** Whether wireguard-go answered (with an error), rather than the connection failing. */
    readonly answered = false,
  ) {
    super(message);
  }
}

/**
 * A connection to wireguard-go's socket, kept open for request after request: wireguard-go
 * answers any number of them on one connection, and connecting anew costs three times the CPU
 * of the request itself (an agent's connect() asks for the status every few milliseconds
 * while it waits for a handshake).
 *
 * Requests go one at a time, in order. Any failure drops the connection, and the next request
 * opens another. A request whose connection, opened for an earlier one, failed under it
 * (wireguard-go may have restarted since) is sent once more, on a new connection.
 */
export class UapiConnection {
  private socket: Socket | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {}

  /** Sends one request (its lines, without the blank line that ends it) and returns the answer's lines before `errno=`. */
  request(lines: readonly string[], timeoutMs = 5_000): Promise<string[]> {
    const sent = this.queue.then(async () => {
      const reused = this.socket !== undefined;
      try {
        return await this.exchange(lines, timeoutMs);
      } catch (error) {
        // A refusal is an answer, and a wireguard-go that hangs hangs on a new connection too.
        if (!reused || (error as UapiError).answered || (error as UapiError).code === "ETIMEDOUT") throw error;
        return await this.exchange(lines, timeoutMs);
      }
    });
    this.queue = sent.catch(() => {});
    return sent;
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private exchange(lines: readonly string[], timeoutMs: number): Promise<string[]> {
    const socket = this.connection();
    return new Promise((resolve, reject) => {
      let answer = "";
      const settle = (error: UapiError | undefined, received?: string[]) => {
        clearTimeout(timer);
        socket.off("data", onData).off("error", onError).off("close", onClose);
        if (error) {
          if (this.socket === socket) this.close();
          reject(error);
        } else resolve(received as string[]);
      };
      const onData = (chunk: string) => {
        answer += chunk;
        const end = answer.indexOf("\n\n");
        if (end === -1) return;
        const received = answer.slice(0, end).split("\n");
        const errno = received.pop();
        if (errno === "errno=0") return settle(undefined, received);
        settle(new UapiError(`wireguard-go refused the request (${errno ?? "no errno"})`, errno?.slice("errno=".length) ?? "EPROTO", true));
      };
      const onError = (error: NodeJS.ErrnoException) =>
        settle(new UapiError(`cannot talk to ${this.path}: ${error.message}`, error.code ?? "EIO"));
      const onClose = () => settle(new UapiError(`${this.path} closed the connection before answering`, "EPIPE"));
      const timer = setTimeout(() => settle(new UapiError(`no answer from ${this.path} within ${timeoutMs} ms`, "ETIMEDOUT")), timeoutMs);
      socket.on("data", onData).on("error", onError).on("close", onClose);
      socket.write(`${lines.join("\n")}\n\n`);
    });
  }

  private connection(): Socket {
    if (this.socket && !this.socket.destroyed) return this.socket;
    const socket = createConnection(this.path);
    socket.setEncoding("utf8");
    socket.unref(); // an idle connection does not keep the process alive
    // Between requests: an error or wireguard-go going away drops it, for the next request to reopen.
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.socket === socket) this.socket = undefined;
    });
    this.socket = socket;
    return socket;
  }
}

/** One request on a connection of its own, closed after. */
export async function uapiRequest(socketPath: string, lines: readonly string[], timeoutMs = 5_000): Promise<string[]> {
  const connection = new UapiConnection(socketPath);
  try {
    return await connection.request(lines, timeoutMs);
  } finally {
    connection.close();
  }
}

/** The interface and its peers, as `wg show NAME dump` would describe them. */
export async function uapiStatus(connection: UapiConnection): Promise<InterfaceStatus> {
  const lines = await connection.request(["get=1"]);
  const status: InterfaceStatus = { publicKey: "", listenPort: 0, peers: [] };
  let peer: PeerStatus | undefined;
  let handshakeSec = 0;
  let handshakeNsec = 0;
  const finishPeer = () => {
    if (peer) peer.latestHandshake = handshakeSec > 0 ? handshakeSec * 1000 + Math.floor(handshakeNsec / 1e6) : null;
  };
  for (const line of lines) {
    const at = line.indexOf("=");
    const key = line.slice(0, at);
    const value = line.slice(at + 1);
    if (key === "public_key") {
      finishPeer();
      handshakeSec = handshakeNsec = 0;
      peer = {
        publicKey: fromHex(value),
        endpoint: null,
        allowedIps: [],
        latestHandshake: null,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: null,
      };
      status.peers.push(peer);
    } else if (!peer) {
      if (key === "private_key") status.publicKey = ownPublicKey(value);
      else if (key === "listen_port") status.listenPort = Number(value);
    } else if (key === "endpoint") peer.endpoint = value;
    else if (key === "allowed_ip") peer.allowedIps.push(value);
    else if (key === "last_handshake_time_sec") handshakeSec = Number(value);
    else if (key === "last_handshake_time_nsec") handshakeNsec = Number(value);
    else if (key === "rx_bytes") peer.rxBytes = Number(value);
    else if (key === "tx_bytes") peer.txBytes = Number(value);
    else if (key === "persistent_keepalive_interval") peer.persistentKeepalive = Number(value) > 0 ? Number(value) : null;
  }
  finishPeer();
  return status;
}

/**
 * The interface's public key, derived from its private key once, not at every status: the
 * derivation takes about a millisecond, and an agent's connect() asks for the status every
 * few milliseconds.
 */
let derived: { privateHex: string; publicKey: string } | undefined;
function ownPublicKey(privateHex: string): string {
  if (derived?.privateHex !== privateHex) derived = { privateHex, publicKey: publicKeyOf(fromHex(privateHex)) };
  return derived.publicKey;
}

export const toHex = (base64Key: string) => Buffer.from(base64Key, "base64").toString("hex");
const fromHex = (hexKey: string) => Buffer.from(hexKey, "hex").toString("base64");
