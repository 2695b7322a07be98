/** Parsing `wg show NAME dump`: the peer table, which is also where NAT mappings show up. */

export interface PeerStatus {
  publicKey: string;
  /** `ip:port` the interface last heard this peer from (its NAT mapping), or null. */
  endpoint: string | null;
  allowedIps: string[];
  /** Unix ms of the latest handshake, or null for never. */
  latestHandshake: number | null;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number | null;
}

export interface InterfaceStatus {
  publicKey: string;
  listenPort: number;
  peers: PeerStatus[];
}

const none = (value: string | undefined) => (value === undefined || value === "(none)" || value === "off" ? null : value);

/**
 * The first line describes the interface (private key, public key, listen port, fwmark);
 * each further line a peer (public key, preshared key, endpoint, allowed ips, latest
 * handshake, rx, tx, persistent keepalive), tab-separated.
 */
export function parseDump(text: string): InterfaceStatus {
  const [head, ...rows] = text.trim().split("\n");
  const device = (head ?? "").split("\t");
  if (device.length < 4) throw new Error(`unexpected output from wg show dump: ${JSON.stringify(head)}`);
  return {
    publicKey: device[1] ?? "",
    listenPort: Number(device[2]),
    peers: rows.map((row) => {
      const f = row.split("\t");
      const handshake = Number(f[4]);
      const keepalive = none(f[7]);
      return {
        publicKey: f[0] ?? "",
        endpoint: none(f[2]),
        allowedIps: (none(f[3]) ?? "").split(",").filter(Boolean),
        latestHandshake: handshake > 0 ? handshake * 1000 : null,
        rxBytes: Number(f[5]),
        txBytes: Number(f[6]),
        persistentKeepalive: keepalive === null ? null : Number(keepalive),
      };
    }),
  };
}
