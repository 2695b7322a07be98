/**
 * The mesh's fixed numbers, for both ends of every tunnel. The coordinator hands them out
 * (its join answer carries the prefix); the agent and the hub configure WireGuard with them.
 */

/** Bits of the mesh prefix: RFC 6598 shared address space, which no LAN or cloud VPC uses. */
export const MESH_PREFIX_LENGTH = 10;
/** Routed through every tunnel; each agent owns one /32 of it. */
export const MESH_PREFIX = `100.64.0.0/${MESH_PREFIX_LENGTH}`;
/** The coordinator's address in the mesh: the first of the prefix. */
export const COORDINATOR_ADDRESS = "100.64.0.1";

/**
 * WireGuard's persistent keepalive on every tunnel, in seconds: within the 30 s in which
 * a NAT forgets a UDP mapping that saw no reply, so the path stays open both ways.
 */
export const KEEPALIVE_SECONDS = 25;

/**
 * Default interface names. They differ because a coordinator and an agent may run on one
 * machine (a trial, the lab), and wireguard-go's sockets are shared by all its namespaces.
 */
export const DEFAULT_INTERFACE = { coordinator: "coral0", agent: "coral1" } as const;

/** Whether an IPv4 address lies in the mesh prefix (100.64.0.0/10): 100.64.0.0 to 100.127.255.255. */
export function isMeshAddress(address: string): boolean {
  const [a, b] = address.split(".").map(Number);
  return a === 100 && b !== undefined && b >= 64 && b <= 127;
}
