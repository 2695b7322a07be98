/** Where agents may reach the hub's WireGuard port, as the coordinator tells discovery and each new agent. */
import { networkInterfaces } from "node:os";

/**
 * The configured endpoints, or else this machine's addresses with discovery's view of it
 * first. Discovery's view is our NAT's public address; with a forwarded port, or a NAT that
 * keeps ports, it is the way in. It goes first: agents across the internet outnumber those
 * on the hub's own network, and each candidate tried costs them time.
 */
export function advertisedEndpoints(
  settings: { endpoints: string[]; interfaceName: string; listenPort: number },
  observedAddress: string | null | undefined,
): string[] {
  if (settings.endpoints.length > 0) return settings.endpoints;
  const detected = localAddresses(settings.interfaceName).map((ip) => `${ip}:${settings.listenPort}`);
  const fromOutside = observedAddress && !observedAddress.includes(":") ? [`${observedAddress}:${settings.listenPort}`] : [];
  return [...new Set([...fromOutside, ...detected])].slice(0, 8);
}

/** This machine's IPv4 addresses other agents might reach, skipping loopback and the mesh itself. */
function localAddresses(meshInterface: string): string[] {
  return Object.entries(networkInterfaces())
    .filter(([name]) => name !== meshInterface)
    .flatMap(([, addresses]) => addresses ?? [])
    .filter((a) => a.family === "IPv4" && !a.internal)
    .map((a) => a.address);
}
