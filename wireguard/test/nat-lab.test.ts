/**
 * The NAT lab's routers behave as the kinds they claim to be, measured with UDP:
 * mapping (does the public port depend on the destination?) and filtering (who may
 * send in through a mapping?).
 */
import { execFileSync, spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNatLab, labSkipReason, missingForNatLab, type NatLab, type Site } from "../src/testing/index.js";

const skip = missingForNatLab() ? labSkipReason("NAT lab tests") !== null : false;

/** A UDP server in `ns` that answers every datagram with the sender's address, from `fromPorts` (each). */
const ECHO = `
import dgram from "node:dgram";
const ports = process.argv.slice(1).map(Number); // with -e, arguments start at argv[1]
const sockets = ports.map((port) => { const s = dgram.createSocket("udp4"); s.bind(port); return s; });
sockets[0].on("message", (msg, rinfo) => {
  const [reply, via] = msg.toString().split(" ");
  const text = rinfo.address + ":" + rinfo.port;
  for (const s of via === "all" ? sockets : [sockets[0]]) s.send(text, rinfo.port, rinfo.address);
});
process.stdout.write("ready\\n");
`;

/** Sends from `ns`, local port `from`, to each target; prints each reply (the mapping seen) or "none". */
const PROBE = `
import dgram from "node:dgram";
const [from, mode, ...targets] = process.argv.slice(1);
const s = dgram.createSocket("udp4");
const replies = [];
s.on("message", (msg, rinfo) => replies.push(rinfo.address + ":" + rinfo.port + "=" + msg.toString()));
s.bind(Number(from), () => {
  for (const t of targets) { const [host, port] = t.split(":"); s.send("probe " + mode, Number(port), host); }
  setTimeout(() => { process.stdout.write(JSON.stringify(replies)); s.close(); }, 400);
});
`;

describe.skipIf(skip)("the NAT lab", () => {
  let lab: NatLab;
  const servers: ReturnType<typeof spawn>[] = [];
  let echo: Site;
  const run = (ns: string, script: string, args: string[]) =>
    execFileSync("ip", ["netns", "exec", ns, process.execPath, "--input-type=module", "-e", script, ...args], { stdio: "pipe" }).toString();

  beforeAll(async () => {
    lab = createNatLab();
    echo = lab.addSite("echo", "none");
    // Two echo servers on one public host: ports 3478 and 3479; 3478 can answer from both.
    const server = spawn(
      "ip",
      ["netns", "exec", echo.hosts[0]?.ns as string, process.execPath, "--input-type=module", "-e", ECHO, "3478", "3479"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    servers.push(server);
    await new Promise((r) => server.stdout?.once("data", r));
  }, 30_000);
  afterAll(() => {
    for (const s of servers) s.kill("SIGKILL");
    lab?.destroy();
  });

  const probe = (site: Site, mode: "one" | "all", targets: string[], from = 40000) =>
    JSON.parse(run(site.hosts[0]?.ns as string, PROBE, [String(from), mode, ...targets])) as string[];

  it.each([
    // kind, same mapping for both destinations, reply from another port gets in
    ["full-cone", true, true],
    ["address-restricted", true, true],
    ["port-restricted", true, false],
    ["symmetric", false, false],
  ] as const)("%s: endpoint-independent mapping %s, a reply from another port gets in: %s", (kind, independent, otherPort) => {
    const site = lab.addSite(kind, kind);
    const to = (port: number) => `${echo.publicAddress}:${port}`;
    // Mapping: the public address and port the echo server saw, toward two destinations.
    const seen = probe(site, "one", [to(3478), to(3479)]).map((r) => r.split("=")[1]);
    expect(seen).toHaveLength(1); // only 3478 answers in "one" mode
    const first = seen[0] as string;
    expect(first.split(":")[0]).toBe(site.publicAddress);
    const again = probe(site, "one", [to(3478)])[0]?.split("=")[1];
    expect(again).toBe(first); // the same destination keeps its mapping
    // Filtering: 3478 answers from 3478 and 3479; the 3479 answer is unsolicited. (From a
    // fresh port: the mapping probe above did send to 3479.)
    const replies = probe(site, "all", [to(3478)], 40001).map((r) => r.split("=")[0]);
    expect(replies).toContain(to(3478));
    expect(replies.includes(to(3479))).toBe(otherPort);
    if (independent) {
      // Endpoint-independent mapping keeps the host's port toward any destination.
      expect(first.split(":")[1]).toBe("40000");
    } else {
      expect(first.split(":")[1]).not.toBe("40000");
    }
  });

  it("drops every mapping when a router reboots", () => {
    const site = lab.addSite("reboot", "symmetric");
    const mapping = () => probe(site, "one", [`${echo.publicAddress}:3478`])[0]?.split("=")[1];
    const first = mapping();
    expect(mapping()).toBe(first); // kept while the router runs
    site.reboot();
    const after = mapping();
    expect(after?.split(":")[0]).toBe(site.publicAddress); // traffic flows again...
    expect(after).not.toBe(first); // ...through a new mapping
  });

  it("keeps the internet's address when a site joins: a host that has talked stays reachable", () => {
    const bridge = () => lab.exec(lab.internet.ns, ["cat", "/sys/class/net/b0/address"]).output.trim();
    /** Gives the internet side of the newest site's link `mac`. */
    const setNewestPort = (mac: string) => {
      const ports = lab.exec(lab.internet.ns, ["ip", "-o", "link", "show", "master", "b0"]).output.trim().split("\n");
      const newest = ports.at(-1)?.split(":")[1]?.trim().split("@")[0] as string;
      expect(lab.exec(lab.internet.ns, ["ip", "link", "set", newest, "address", mac]).ok).toBe(true);
    };
    // A host whose own link has the highest MAC: a bridge left to pick its own address
    // (the lowest of its ports') would then answer ARP with another port's.
    const talker = lab.addSite("talker", "none");
    setNewestPort("fe:ff:ff:ff:ff:fe");
    const ping = () => lab.exec(talker.hosts[0]?.ns as string, ["ping", "-c", "1", "-W", "1", lab.internet.address]).ok;
    expect(ping()).toBe(true); // the talker now has the internet's MAC in its ARP cache
    const before = bridge();
    // A site joins whose link has a lower MAC than any before (the lowest documentation MAC).
    lab.addSite("late", "none");
    setNewestPort("00:00:5e:00:53:00");
    expect(bridge()).toBe(before);
    expect(ping(), "the host that had talked still reaches the internet at once").toBe(true);
  });

  it("removes everything it made", () => {
    const extra = createNatLab();
    extra.addSite("x", "symmetric", 2);
    const ours = () =>
      execFileSync("ip", ["netns", "list"])
        .toString()
        .split("\n")
        .filter((l) => l.startsWith(extra.prefix));
    expect(ours().length).toBe(4); // internet, router, two hosts
    extra.destroy();
    expect(ours()).toEqual([]);
  });
});
