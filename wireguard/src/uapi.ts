/**
 * wireguard-go's configuration protocol (https://www.wireguard.com/xplatform/): `get=1` and
 * `set=1` requests over the UNIX socket it serves for each interface, the same requests `wg`
 * makes. Talking to the socket directly costs well under a millisecond per request, where
 * spawning `wg` costs about ten: that is what lets an agent poll for its handshake every few
 * milliseconds. The kernel module speaks netlink instead, for which `wg` is still used.
 */
import { createConnection } from "node:net";
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
  ) {
    super(message);
  }
}

/** Sends one request (its lines, without the blank line that ends it) and returns the answer's lines before `errno=`. */
export function uapiRequest(socketPath: string, lines: readonly string[], timeoutMs = 5_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    let answer = "";
    const fail = (error: UapiError) => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(new UapiError(`no answer from ${socketPath} within ${timeoutMs} ms`, "ETIMEDOUT")));
    socket.on("error", (error: NodeJS.ErrnoException) =>
      fail(new UapiError(`cannot talk to ${socketPath}: ${error.message}`, error.code ?? "EIO")),
    );
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      answer += chunk;
      const end = answer.indexOf("\n\n");
      if (end === -1) return;
      socket.end();
      const received = answer.slice(0, end).split("\n");
      const errno = received.pop();
      if (errno !== "errno=0") {
        reject(new UapiError(`wireguard-go refused the request (${errno ?? "no errno"})`, errno?.slice("errno=".length) ?? "EPROTO"));
        return;
      }
      resolve(received);
    });
    socket.on("end", () => {
      if (!answer.includes("\n\n")) fail(new UapiError(`${socketPath} closed the connection before answering`, "EPIPE"));
    });
    socket.end(`${lines.join("\n")}\n\n`);
  });
}

/** The interface and its peers, as `wg show NAME dump` would describe them. */
export async function uapiStatus(socketPath: string): Promise<InterfaceStatus> {
  const lines = await uapiRequest(socketPath, ["get=1"]);
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
