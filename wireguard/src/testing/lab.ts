/**
 * A two-host lab in network namespaces, for tests (of any package) that need real packets. Needs root
 * and wireguard-tools, wireguard-go and iproute2; without them the suite skips with one
 * line, and under CORAL_REQUIRE_ALL=1 (CI) it fails instead.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

export function missingForLab(): string | null {
  if (process.getuid?.() !== 0) return "needs root (network namespaces, WireGuard)";
  for (const tool of ["wg", "wireguard-go", "ip", "ping"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      return `needs ${tool} (apt-get install wireguard-tools wireguard-go iproute2 iputils-ping)`;
    }
  }
  return null;
}

/** Skips with a reason locally; under CORAL_REQUIRE_ALL=1 a missing requirement is a failure. */
export function labSkipReason(suite: string): string | null {
  const missing = missingForLab();
  if (!missing) return null;
  if (process.env.CORAL_REQUIRE_ALL === "1") throw new Error(`${suite}: ${missing}, and CORAL_REQUIRE_ALL=1 forbids skipping`);
  console.warn(`skipping ${suite}: ${missing}`);
  return missing;
}

export interface Lab {
  prefix: string;
  /** Namespace names of the two hosts. */
  a: string;
  b: string;
  /** Underlay (TEST-NET-1) addresses of the two hosts. */
  addressA: string;
  addressB: string;
  exec(ns: string, command: string[]): { ok: boolean; output: string };
  destroy(): void;
}

export function createLab(): Lab {
  // Short and unique per run: interface names are limited to 15 characters.
  const prefix = `c${randomBytes(3).toString("hex")}`;
  const a = `${prefix}a`;
  const b = `${prefix}b`;
  const sh = (args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
  const lab: Lab = {
    prefix,
    a,
    b,
    addressA: "192.0.2.1",
    addressB: "192.0.2.2",
    exec(ns, command) {
      try {
        return { ok: true, output: execFileSync("ip", ["netns", "exec", ns, ...command], { stdio: "pipe" }).toString() };
      } catch (error) {
        const e = error as { stdout?: Buffer; stderr?: Buffer };
        return { ok: false, output: `${e.stdout?.toString() ?? ""}${e.stderr?.toString() ?? ""}` };
      }
    },
    destroy() {
      for (const ns of [a, b]) {
        try {
          sh(["netns", "del", ns]);
        } catch {
          // Already gone.
        }
      }
      killWireGuard(prefix);
    },
  };
  try {
    sh(["netns", "add", a]);
    sh(["netns", "add", b]);
    sh(["link", "add", `${prefix}va`, "netns", a, "type", "veth", "peer", "name", `${prefix}vb`, "netns", b]);
    for (const [ns, dev, address] of [
      [a, `${prefix}va`, lab.addressA],
      [b, `${prefix}vb`, lab.addressB],
    ] as const) {
      lab.exec(ns, ["ip", "link", "set", "lo", "up"]);
      const added = lab.exec(ns, ["ip", "address", "add", `${address}/24`, "dev", dev]);
      const up = lab.exec(ns, ["ip", "link", "set", dev, "up"]);
      if (!added.ok || !up.ok) throw new Error(`lab setup failed: ${added.output}${up.output}`);
    }
  } catch (error) {
    lab.destroy();
    throw error;
  }
  return lab;
}

/**
 * Stops any wireguard-go still serving an interface named with the lab's prefix: one whose
 * supervisor was killed outright keeps running after its namespace is gone.
 */
export function killWireGuard(prefix: string): void {
  try {
    execFileSync("pkill", ["-KILL", "-f", `^wireguard-go -f ${prefix}`], { stdio: "ignore" });
  } catch {
    // pkill exits 1 when nothing matched.
  }
}
