/**
 * An internet with NATs, in network namespaces: a lab for the mesh end to end.
 *
 *   internet namespace: a bridge at 198.51.100.1/24 (TEST-NET-2), the "internet" itself,
 *   where the lab serves discovery
 *     ├─ public host       198.51.100.x, default route via 198.51.100.1
 *     └─ NAT router        WAN 198.51.100.x, LAN 203.0.113.16i/28 (TEST-NET-3), nftables NAT
 *          └─ host(s)      203.0.113.16i+2, .16i+3 ...
 *
 * NAT kinds follow RFC 4787 (mapping × filtering), made with nftables as in
 * shared/REFERENCE.md: full cone (endpoint-independent mapping, no filtering),
 * address-restricted, port-restricted (Linux's plain masquerade) and symmetric
 * (per-destination mapping with random ports). Every name starts with a per-run prefix,
 * and destroy() removes every namespace the lab made (and with them their interfaces).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { killWireGuard, missingForLab } from "./lab.js";

export type NatKind = "none" | "full-cone" | "address-restricted" | "port-restricted" | "symmetric";
export const NAT_KINDS: readonly NatKind[] = ["none", "full-cone", "address-restricted", "port-restricted", "symmetric"];

export interface LabHost {
  /** The host's namespace. */
  ns: string;
  /** Its own address: public for `none`, on the LAN behind its router otherwise. */
  address: string;
}

export interface Site {
  name: string;
  kind: NatKind;
  /** The address the internet sees: the router's WAN address, or the host's own. */
  publicAddress: string;
  /** The router's namespace (undefined for `none`). */
  router: string | undefined;
  hosts: LabHost[];
  /** The router "reboots": its WAN address goes and comes back, which drops every NAT mapping. */
  reboot(): void;
  /** The router forwards a UDP port of its WAN address to its first host, as a user opening a port does. */
  forwardUdp(port: number): void;
}

export interface NatLab {
  prefix: string;
  /** The internet namespace and its address (serve discovery there). */
  internet: LabHost;
  /** A host on the internet (kind `none`, one host) or behind a NAT router with `hosts` hosts. */
  addSite(name: string, kind: NatKind, hosts?: number): Site;
  exec(ns: string, command: string[]): { ok: boolean; output: string };
  destroy(): void;
}

export function missingForNatLab(): string | null {
  const missing = missingForLab();
  if (missing) return missing;
  try {
    execFileSync("sh", ["-c", "command -v nft"], { stdio: "ignore" });
  } catch {
    return "needs nft (apt-get install nftables)";
  }
  return null;
}

const INTERNET = "198.51.100";
/**
 * Bridges get a fixed address (from 00-00-5E-00-53-00/24, which RFC 7042 sets aside for
 * documentation). Left to itself, a Linux bridge takes the lowest address of its ports and
 * changes it whenever a port with a lower one joins: every host that has talked keeps the
 * old one in its ARP cache, and its packets are dropped, silently, until that entry is
 * probed again, several seconds later. Sites join while others talk, so this must not move.
 */
const BRIDGE_MAC = { internet: "00:00:5e:00:53:01", lan: "00:00:5e:00:53:02" } as const;

export function createNatLab(): NatLab {
  const prefix = `n${randomBytes(3).toString("hex")}`;
  const namespaces: string[] = [];
  let sites = 0;
  const ip = (args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
  const inNs = (ns: string, command: string[], input?: string) =>
    execFileSync("ip", ["netns", "exec", ns, ...command], { stdio: "pipe", ...(input === undefined ? {} : { input }) }).toString();
  const addNs = (name: string) => {
    const ns = `${prefix}${name}`;
    ip(["netns", "add", ns]);
    namespaces.push(ns);
    inNs(ns, ["ip", "link", "set", "lo", "up"]);
    return ns;
  };
  /** A veth pair between two namespaces, each end named `${prefix}${short}`. */
  const link = (nsA: string, devA: string, nsB: string, devB: string) => {
    ip(["link", "add", devA, "netns", nsA, "type", "veth", "peer", "name", devB, "netns", nsB]);
    inNs(nsA, ["ip", "link", "set", devA, "up"]);
    inNs(nsB, ["ip", "link", "set", devB, "up"]);
  };
  /** Plugs a new namespace into the internet bridge with `address`, default route via the internet. */
  const attach = (ns: string, short: string, address: string, device = "wan") => {
    const outer = `${prefix}${short}`;
    link(internet, outer, ns, device);
    inNs(internet, ["ip", "link", "set", outer, "master", "b0"]);
    inNs(ns, ["ip", "addr", "add", `${address}/24`, "dev", device]);
    inNs(ns, ["ip", "route", "add", "default", "via", `${INTERNET}.1`]);
  };

  const internet = addNs("i");
  const lab: NatLab = {
    prefix,
    internet: { ns: internet, address: `${INTERNET}.1` },
    addSite(name, kind, hostCount = 1) {
      const index = ++sites;
      if (index > 14) throw new Error("the NAT lab holds at most 14 sites");
      const wan = `${INTERNET}.${10 + index}`;
      if (kind === "none") {
        if (hostCount !== 1) throw new Error("a public site has exactly one host");
        const ns = addNs(`h${index}`);
        attach(ns, `p${index}`, wan);
        return { name, kind, publicAddress: wan, router: undefined, hosts: [{ ns, address: wan }], reboot() {}, forwardUdp() {} };
      }
      if (kind === "full-cone" && hostCount !== 1) throw new Error("a full-cone site forwards to exactly one host");
      const router = addNs(`r${index}`);
      attach(router, `p${index}`, wan);
      inNs(router, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      const lanBase = 16 * index;
      const gateway = `203.0.113.${lanBase + 1}`;
      const lanCidr = `203.0.113.${lanBase}/28`;
      const hosts: LabHost[] = [];
      // A bridge on the router's LAN side, so that several hosts can sit behind one NAT.
      inNs(router, ["ip", "link", "add", "lan", "address", BRIDGE_MAC.lan, "type", "bridge"]);
      inNs(router, ["ip", "link", "set", "lan", "up"]);
      inNs(router, ["ip", "addr", "add", `${gateway}/28`, "dev", "lan"]);
      for (let h = 0; h < hostCount; h++) {
        const ns = addNs(`h${index}${String.fromCharCode(97 + h)}`);
        const address = `203.0.113.${lanBase + 2 + h}`;
        const port = `port${h}`;
        link(router, port, ns, "e");
        inNs(router, ["ip", "link", "set", port, "master", "lan"]);
        inNs(ns, ["ip", "addr", "add", `${address}/28`, "dev", "e"]);
        inNs(ns, ["ip", "route", "add", "default", "via", gateway]);
        hosts.push({ ns, address });
      }
      inNs(router, ["nft", "-f", "-"], natRules(kind, wan, lanCidr, hosts[0]?.address as string));
      return {
        name,
        kind,
        publicAddress: wan,
        router,
        hosts,
        reboot() {
          // Masquerade mappings go with the address; the address filter forgets who was seen.
          if (kind === "address-restricted") inNs(router, ["nft", "flush", "set", "ip", "lab", "seen_addr"]);
          inNs(router, ["ip", "addr", "del", `${wan}/24`, "dev", "wan"]);
          inNs(router, ["ip", "addr", "add", `${wan}/24`, "dev", "wan"]);
          inNs(router, ["ip", "route", "replace", "default", "via", `${INTERNET}.1`]);
        },
        forwardUdp(port) {
          const host = hosts[0]?.address as string;
          const rules = [
            "table ip forward {",
            "  chain pre {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            `    iifname "wan" ip daddr ${wan} udp dport ${port} dnat to ${host}`,
            "  }",
            "  chain post {",
            // Replies, and what the host sends from the port, leave from the forwarded port.
            "    type nat hook postrouting priority srcnat - 1; policy accept;",
            `    oifname "wan" ip saddr ${host} udp sport ${port} snat to ${wan}:${port}`,
            "  }",
            "}",
            "",
          ].join("\n");
          inNs(router, ["nft", "-f", "-"], rules);
        },
      };
    },
    exec(ns, command) {
      try {
        return { ok: true, output: inNs(ns, command) };
      } catch (error) {
        const e = error as { stdout?: Buffer; stderr?: Buffer };
        return { ok: false, output: `${e.stdout?.toString() ?? ""}${e.stderr?.toString() ?? ""}` };
      }
    },
    destroy() {
      for (const ns of namespaces.reverse()) {
        try {
          ip(["netns", "del", ns]);
        } catch {
          // Already gone.
        }
      }
      namespaces.length = 0;
      killWireGuard(prefix);
    },
  };
  try {
    inNs(internet, ["ip", "link", "add", "b0", "address", BRIDGE_MAC.internet, "type", "bridge"]);
    inNs(internet, ["ip", "link", "set", "b0", "up"]);
    inNs(internet, ["ip", "addr", "add", `${INTERNET}.1/24`, "dev", "b0"]);
  } catch (error) {
    lab.destroy();
    throw error;
  }
  return lab;
}

/** The router's ruleset for a NAT kind; rules one per line (a one-line ruleset fails to parse). */
function natRules(kind: Exclude<NatKind, "none">, wan: string, lan: string, host: string): string {
  const lines = ["table ip lab {"];
  if (kind === "full-cone" || kind === "address-restricted") {
    // Endpoint-independent mapping: one static public address and port per host port.
    lines.push(
      "  chain pre {",
      "    type nat hook prerouting priority dstnat; policy accept;",
      `    iifname "wan" ip daddr ${wan} udp dport 1024-65535 dnat to ${host}`,
      "  }",
      "  chain post {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      `    oifname "wan" ip saddr ${lan} snat to ${wan}`,
      "  }",
    );
  }
  if (kind === "address-restricted") {
    // Inbound only from addresses the host has sent to.
    lines.push(
      "  set seen_addr {",
      "    type ipv4_addr; flags dynamic,timeout; timeout 120s;",
      "  }",
      "  chain fwdlab {",
      "    type filter hook forward priority filter; policy drop;",
      `    iifname "lan" oifname "wan" update @seen_addr { ip daddr } accept`,
      `    iifname "wan" ct state established,related accept`,
      `    iifname "wan" ip saddr @seen_addr accept`,
      "  }",
    );
  }
  if (kind === "port-restricted") {
    // Linux's masquerade keeps the source port where it can; conntrack lets in only replies.
    lines.push("  chain post {", "    type nat hook postrouting priority srcnat; policy accept;", `    oifname "wan" masquerade`, "  }");
  }
  if (kind === "symmetric") {
    // A new random public port for every destination; replies only.
    lines.push(
      "  chain post {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      `    oifname "wan" meta l4proto { tcp, udp } masquerade to :1024-65535 fully-random`,
      `    oifname "wan" masquerade`,
      "  }",
    );
  }
  // Like a home router, it drops what comes in unasked rather than answering it: without
  // this, Linux would keep a connection entry for the unanswered packet, and an outgoing
  // mapping that clashes with it would be given another public port.
  lines.push("  chain input {", "    type filter hook input priority filter; policy accept;", `    iifname "wan" ct state new drop`, "  }");
  lines.push("}", "");
  return lines.join("\n");
}
