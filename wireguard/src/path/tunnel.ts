/** What path code needs of a WireGuard interface, and the stand-in for running without one. */
import type { InterfaceStatus, PeerStatus } from "../dump.js";
import type { WireGuardInterface } from "../interface.js";

/** A WireGuard interface as the coordinator and the agent use it. */
export type Tunnel = Pick<WireGuardInterface, "mode" | "setPeer" | "setPeers" | "removePeer" | "status" | "down">;

/** `--wireguard off`: no interface and no peers; coordinator and agents share one machine. */
export class NoTunnel implements Tunnel {
  readonly mode = "userspace" as const;
  async setPeer(): Promise<void> {}
  async setPeers(): Promise<void> {}
  async removePeer(): Promise<void> {}
  async status(): Promise<InterfaceStatus> {
    return { publicKey: "", listenPort: 0, peers: [] };
  }
  async down(): Promise<void> {}
}

/** One peer's row of the interface's peer table, if it has one. */
export async function peerOf(tunnel: Pick<Tunnel, "status">, publicKey: string): Promise<PeerStatus | undefined> {
  return (await tunnel.status()).peers.find((p) => p.publicKey === publicKey);
}
