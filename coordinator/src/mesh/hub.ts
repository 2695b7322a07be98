/**
 * The hub's WireGuard side: its interface (or none, with `--wireguard off`), every enrolled
 * agent restored as a peer at start, and each new agent added and sent toward.
 */
import { WireGuardInterface } from "@coral-mesh/wireguard";
import {
  COORDINATOR_ADDRESS,
  KEEPALIVE_SECONDS,
  MESH_PREFIX_LENGTH,
  NoTunnel,
  nudge,
  punch,
  type Tunnel,
} from "@coral-mesh/wireguard/path";
import type { Store } from "../store/db.js";
import { agents } from "../store/schema.js";

export interface HubOptions {
  interfaceName: string;
  listenPort: number;
  privateKey: string;
  /** `off`: no interface; agents on this machine reach the agent service over loopback. */
  mode: "auto" | "kernel" | "userspace" | "off";
  log: (line: string) => void;
}

export async function bringUpHub(options: HubOptions): Promise<Tunnel> {
  if (options.mode === "off") return new NoTunnel();
  const address = `${COORDINATOR_ADDRESS}/${MESH_PREFIX_LENGTH}`;
  options.log(`bringing up WireGuard interface ${options.interfaceName} (${address}, UDP ${options.listenPort})...`);
  return WireGuardInterface.up({
    name: options.interfaceName,
    privateKey: options.privateKey,
    listenPort: options.listenPort,
    address,
    mode: options.mode,
    onEvent: (event) => options.log(`wireguard: ${event.message}`),
  });
}

/**
 * Every enrolled agent as a peer, at its last known endpoint, so agents come back without
 * re-joining; then a packet toward each such agent (see `nudge`): the hub restarted without
 * sessions, and this makes it shake hands at once instead of waiting until the agent notices
 * that its session went stale (15 s or more). Resolves with how many were restored.
 */
export async function restorePeers(db: Store, wireguard: Tunnel): Promise<number> {
  const enrolled = db.select({ key: agents.wireguardKey, meshIp: agents.meshIp, endpoint: agents.endpoint }).from(agents).all();
  await wireguard.setPeers(
    enrolled.map((a) => ({
      publicKey: a.key,
      allowedIps: [`${a.meshIp}/32`],
      ...(a.endpoint ? { endpoint: a.endpoint, persistentKeepalive: KEEPALIVE_SECONDS } : {}),
    })),
  );
  await nudge(enrolled.filter((a) => a.endpoint).map((a) => a.meshIp));
  return enrolled.length;
}

/**
 * Adds a newly enrolled agent as a peer. The endpoint alone sends nothing yet: `punch` sends
 * toward the agent, in the background, and logs what came of it.
 */
export function welcomer(wireguard: Tunnel, log: (line: string) => void, say?: (endpoint: string) => string) {
  return async (peer: { publicKey: string; meshIp: string; endpoint: string | undefined }): Promise<void> => {
    const spec = { publicKey: peer.publicKey, allowedIps: [`${peer.meshIp}/32`] };
    await wireguard.setPeer(peer.endpoint ? { ...spec, endpoint: peer.endpoint } : spec);
    if (peer.endpoint) {
      void punch(wireguard, { ...spec, endpoint: peer.endpoint }, say).then(
        (outcome) => log(`new agent at ${peer.meshIp}: ${outcome}`),
        (error: unknown) =>
          log(`new agent at ${peer.meshIp}: sending toward it failed: ${error instanceof Error ? error.message : String(error)}`),
      );
    }
  };
}
