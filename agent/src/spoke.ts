/**
 * The agent's end of its tunnel to the hub: the WireGuard interface (none with
 * `--wireguard off`), reaching the hub through it (see `connect` in @coral-mesh/wireguard/path),
 * and remembering in the data directory which endpoints to try first next time.
 */
import { WireGuardInterface, type WireGuardKeyPair } from "@coral-mesh/wireguard";
import { connect, direct, type HubPeer, NoTunnel, type PathStrategy, type Tunnel } from "@coral-mesh/wireguard/path";
import { type MeshState, saveMeshState } from "./join.js";

/** The ways to the hub, tried in this order. */
const STRATEGIES: readonly PathStrategy[] = [direct];

export interface SpokeOptions {
  dataDir: string;
  mesh: MeshState;
  /** `off`: no WireGuard; the coordinator runs on this machine with `--wireguard off`. */
  mode: "auto" | "kernel" | "userspace" | "off";
  log: (line: string) => void;
  /** Aborting it ends a connect under way (the agent is stopping). */
  signal?: AbortSignal;
  /** No handshake came through these endpoints: says why (see explainNoPath), or throws a removal. */
  onNoPath?: (endpoints: string[]) => Promise<void>;
}

export class Spoke {
  /** Set once the interface is up. */
  private tunnel: Tunnel = new NoTunnel();

  constructor(private readonly options: SpokeOptions) {}

  private get off(): boolean {
    return this.options.mode === "off";
  }

  /** Brings the interface up (wireguard-go starts in a process of its own as this is called). */
  async up(keys: WireGuardKeyPair, interfaceName: string): Promise<void> {
    if (this.off) return;
    const { mesh, mode, log } = this.options;
    this.tunnel = await WireGuardInterface.up({
      name: interfaceName,
      privateKey: keys.privateKey,
      ...(mesh.listenPort ? { listenPort: mesh.listenPort } : {}),
      address: `${mesh.answer.meshIp}/32`,
      routes: [mesh.answer.meshPrefix],
      mode: mode as Exclude<typeof mode, "off">,
      onEvent: (event) => log(`wireguard: ${event.message}`),
    });
  }

  /**
   * Reaches the hub at the endpoints it had: how long the handshake took, or undefined when
   * none was seen. What worked goes first next time.
   */
  async connect(): Promise<number | undefined> {
    if (this.off) return undefined;
    const { mesh } = this.options;
    const connecting = Date.now();
    const through = await this.reach(mesh.answer.endpoints, { signal: this.options.signal });
    if (through === undefined) return undefined;
    if (through && mesh.answer.endpoints[0] !== through) {
      mesh.answer.endpoints = [through, ...mesh.answer.endpoints.filter((e) => e !== through)];
      saveMeshState(this.options.dataDir, mesh);
    }
    return Date.now() - connecting;
  }

  /** Shakes hands anew from a fresh peer entry, even if the tunnel shook hands moments ago. */
  async reconnect(): Promise<void> {
    if (this.off) return;
    await this.reach(this.options.mesh.answer.endpoints, { signal: this.options.signal, fresh: true });
  }

  /** The hub is at these endpoints now (discovery says so): try them, and keep them for the next start. */
  async moveTo(endpoints: string[]): Promise<void> {
    if (!this.off) await this.reach(endpoints, {});
    this.options.mesh.answer.endpoints = endpoints;
    saveMeshState(this.options.dataDir, this.options.mesh);
  }

  async down(): Promise<void> {
    await this.tunnel.down();
  }

  private async reach(endpoints: string[], how: { signal?: AbortSignal | undefined; fresh?: boolean }): Promise<string | undefined> {
    const through = await this.tryPath(endpoints, how);
    if (through === undefined && !how.signal?.aborted) await this.options.onNoPath?.(endpoints);
    return through;
  }

  private tryPath(endpoints: string[], how: { signal?: AbortSignal | undefined; fresh?: boolean }): Promise<string | undefined> {
    const { answer } = this.options.mesh;
    const hub: HubPeer = {
      publicKey: answer.coordinatorWireguardKey,
      endpoints,
      meshIp: answer.coordinatorMeshIp,
      allowedIps: [answer.meshPrefix],
    };
    return connect(
      hub,
      { tunnel: this.tunnel, log: this.options.log, ...(how.signal ? { signal: how.signal } : {}), ...(how.fresh ? { fresh: true } : {}) },
      STRATEGIES,
    );
  }
}
