import { execFileSync, spawn } from "node:child_process";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair, type InterfaceStatus, parseDump, type WireGuardEvent, WireGuardInterface } from "../src/index.js";
import { createLab, type Lab, labSkipReason } from "../src/testing/lab.js";

const skip = labSkipReason("WireGuard interface tests");

async function until(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(skip)("a WireGuard tunnel between two namespaces", () => {
  let lab: Lab;
  let hub: WireGuardInterface;
  let spoke: WireGuardInterface;
  const hubKeys = generateKeyPair();
  const spokeKeys = generateKeyPair();
  const events: WireGuardEvent[] = [];
  const ping = (from: string, to: string) => lab.exec(from, ["ping", "-c", "1", "-W", "1", to]).ok;

  beforeAll(async () => {
    lab = createLab();
    hub = await WireGuardInterface.up({
      name: `${lab.prefix}wa`,
      netns: lab.a,
      privateKey: hubKeys.privateKey,
      listenPort: 51820,
      address: "100.64.0.1/10",
      onEvent: (e) => events.push(e),
    });
    spoke = await WireGuardInterface.up({
      name: `${lab.prefix}wb`,
      netns: lab.b,
      privateKey: spokeKeys.privateKey,
      address: "100.64.0.2/32",
      routes: ["100.64.0.0/10"],
    });
    await hub.setPeer({ publicKey: spokeKeys.publicKey, allowedIps: ["100.64.0.2/32"] });
    await spoke.setPeer({
      publicKey: hubKeys.publicKey,
      endpoint: `${lab.addressA}:51820`,
      allowedIps: ["100.64.0.0/10"],
      persistentKeepalive: 1,
    });
  }, 30_000);

  afterAll(async () => {
    await hub?.down();
    await spoke?.down();
    lab?.destroy();
  });

  it("carries pings over the tunnel, and the hub learns the spoke's endpoint from its peer table", async () => {
    expect(["kernel", "userspace"]).toContain(hub.mode);
    // The overlay address exists only inside the tunnel: the underlay has no route to it.
    expect(lab.exec(lab.b, ["ip", "route", "get", "100.64.0.1"]).output).toContain(`dev ${lab.prefix}wb`);
    await until("a ping through the tunnel", () => ping(lab.b, "100.64.0.1"));
    const status = await hub.status();
    expect(status.listenPort).toBe(51820);
    expect(status.publicKey).toBe(hubKeys.publicKey);
    const peer = status.peers.find((p) => p.publicKey === spokeKeys.publicKey);
    expect(peer?.endpoint).toMatch(/^192\.0\.2\.2:\d+$/);
    expect(peer?.latestHandshake).not.toBeNull();
    expect(peer?.rxBytes).toBeGreaterThan(0);
  }, 30_000);

  it("reads the same peer table through wireguard-go's socket as `wg show dump` prints", async () => {
    if (spoke.mode !== "userspace") return;
    const [viaSocket, dump] = [await spoke.status(), parseDump(lab.exec(lab.b, ["wg", "show", `${lab.prefix}wb`, "dump"]).output)];
    const comparable = (s: InterfaceStatus) => ({
      ...s,
      // The dump has whole seconds; counters move with every keepalive.
      peers: s.peers.map((p) => ({ ...p, latestHandshake: Math.floor((p.latestHandshake ?? 0) / 1000), rxBytes: 0, txBytes: 0 })),
    });
    expect(comparable(viaSocket)).toEqual(comparable(dump));
    expect(viaSocket.peers[0]).toMatchObject({ endpoint: `${lab.addressA}:51820`, allowedIps: ["100.64.0.0/10"], persistentKeepalive: 1 });
  });

  it("restarts a wireguard-go that was killed, with its configuration, and the tunnel comes back", async () => {
    if (hub.mode !== "userspace") return;
    const pid = execFileSync("pgrep", ["-f", `wireguard-go -f ${lab.prefix}wa$`])
      .toString()
      .trim();
    process.kill(Number(pid), "SIGKILL");
    await until("the restart", () => events.some((e) => e.kind === "restarted"));
    expect(events.map((e) => e.kind)).toEqual(["mode", "exited", "restarted"]);
    await until("a ping after the restart", () => ping(lab.b, "100.64.0.1"), 20_000);
    expect((await hub.status()).peers.map((p) => p.publicKey)).toEqual([spokeKeys.publicKey]);
  }, 40_000);

  it("refuses a peer with a malformed value, which in wireguard-go's line protocol could smuggle in a request", async () => {
    const before = await hub.status();
    const other = generateKeyPair().publicKey;
    for (const peer of [
      { publicKey: other, endpoint: "198.51.100.7:51820\nallowed_ip=0.0.0.0/0", allowedIps: ["100.64.0.9/32"] },
      { publicKey: other, allowedIps: ["100.64.0.9/32\npublic_key=00"] },
      { publicKey: `${other}\nremove=true`, allowedIps: ["100.64.0.9/32"] },
    ]) {
      await expect(hub.setPeer(peer)).rejects.toMatchObject({ code: "wireguard_failed", message: expect.stringContaining("malformed") });
    }
    expect((await hub.status()).peers).toEqual(
      before.peers.map((p) => expect.objectContaining({ publicKey: p.publicKey, allowedIps: p.allowedIps })),
    );
  });

  it("stops carrying traffic for a removed peer", async () => {
    await hub.removePeer(spokeKeys.publicKey);
    expect((await hub.status()).peers).toEqual([]);
    expect(ping(lab.b, "100.64.0.1")).toBe(false);
  }, 20_000);

  it("refuses a second interface of the same name, naming the wireguard-go that serves it, and never suggests deleting it", async () => {
    const refused = WireGuardInterface.up({
      name: `${lab.prefix}wa`,
      netns: lab.a,
      privateKey: generateKeyPair().privateKey,
      address: "100.64.9.1/32",
    });
    await expect(refused).rejects.toMatchObject({
      code: "interface_in_use",
      message: expect.stringMatching(new RegExp(`is in use: it is served by \`wireguard-go -f ${lab.prefix}wa\` \\(pid \\d+\\)`)),
    });
    await expect(refused).rejects.toMatchObject({ message: expect.not.stringContaining("ip link del") });
  });

  it("leaves no `ip` waiting when wireguard-go cannot make the interface", async () => {
    // `ip` is started beside wireguard-go, before the interface exists. Here the name's socket
    // is served by the hub's wireguard-go (in another namespace), so there never is one.
    await expect(
      WireGuardInterface.up({ name: `${lab.prefix}wa`, netns: lab.b, privateKey: generateKeyPair().privateKey, address: "100.64.9.2/32" }),
    ).rejects.toMatchObject({ code: "wireguard_failed", message: expect.stringContaining("is in use") });
    await until("the `ip -batch -` started for it to exit", () => !lab.exec(lab.b, ["pgrep", "-fx", "ip -batch -"]).ok, 3_000);
  });

  it("takes over the interface that a killed process left behind, recognising it by its key", async () => {
    const name = `${lab.prefix}wk`;
    const keys = generateKeyPair();
    const script = `
      import { WireGuardInterface } from "@coral-mesh/wireguard";
      await WireGuardInterface.up(${JSON.stringify({ name, netns: lab.b, privateKey: keys.privateKey, address: "100.64.7.1/32" })});
      process.stdout.write("up\\n");
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", "--input-type=module", "-e", script], {
      cwd: dirname(fileURLToPath(import.meta.url)),
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((r) => child.stdout?.once("data", () => r()));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(lab.exec(lab.b, ["ip", "link", "show", name]).ok).toBe(true); // wireguard-go outlived it

    // Someone else's key: refused, and their interface is untouched.
    await expect(
      WireGuardInterface.up({ name, netns: lab.b, privateKey: generateKeyPair().privateKey, address: "100.64.7.1/32" }),
    ).rejects.toMatchObject({ code: "interface_in_use", message: expect.stringContaining("is in use") });
    const seen: WireGuardEvent[] = [];
    const again = await WireGuardInterface.up({
      name,
      netns: lab.b,
      privateKey: keys.privateKey,
      address: "100.64.7.1/32",
      onEvent: (e) => seen.push(e),
    });
    expect(seen.map((e) => e.kind)).toEqual(["replaced", "mode"]);
    expect((await again.status()).publicKey).toBe(keys.publicKey);
    await again.down();
    expect(lab.exec(lab.b, ["pgrep", "-f", `wireguard-go -f ${name}$`]).ok).toBe(false);
  }, 30_000);

  it("leaves nothing behind when brought down", async () => {
    await hub.down();
    await hub.down();
    expect(lab.exec(lab.a, ["ip", "link", "show", `${lab.prefix}wa`]).ok).toBe(false);
    let running = "";
    try {
      running = execFileSync("pgrep", ["-f", `wireguard-go -f ${lab.prefix}wa$`]).toString();
    } catch {
      // pgrep exits 1 when nothing matches.
    }
    expect(running).toBe("");
  }, 20_000);
});
