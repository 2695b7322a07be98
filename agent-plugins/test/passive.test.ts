import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import passive, { serviceOf } from "../src/passive/index.js";
import { createTestContext, lifecycleSuite, MemoryState, runCollect } from "../src/testing.js";
import { firstPagePorts, openLoopback } from "./loopback.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A /proc tree on disk: enough of each file for the passive collector. */
class FakeProc {
  readonly root = mkdtempSync(join(tmpdir(), "coral-proc-"));
  readonly bin = join(this.root, "..", `${this.root.split("/").pop()}-bin`);
  private tcp: string[] = [];

  constructor() {
    dirs.push(this.root, this.bin);
    mkdirSync(join(this.root, "net"));
    mkdirSync(this.bin);
    writeFileSync(join(this.root, "stat"), "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\n");
    writeFileSync(join(this.root, "meminfo"), "MemTotal: 2000 kB\nMemAvailable: 1500 kB\n");
    writeFileSync(join(this.root, "loadavg"), "0.50 0.40 0.30 1/100 999\n");
    this.writeTcp();
  }

  /** A file standing for an executable; `version` makes a different file (a deploy). */
  executable(name: string, version = 1): string {
    const dir = join(this.bin, `v${version}`);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, name);
    writeFileSync(path, `#!${name} ${version}\n`);
    return path;
  }

  add(p: {
    pid: number;
    comm: string;
    cmdline: string[];
    exe?: string;
    start: number;
    cpu?: number;
    rssPages?: number;
    unit?: string;
    sockets?: number[];
  }) {
    const dir = join(this.root, String(p.pid));
    mkdirSync(join(dir, "fd"), { recursive: true });
    const cpu = p.cpu ?? 0;
    writeFileSync(
      join(dir, "stat"),
      `${p.pid} (${p.comm}) S 1 ${p.pid} ${p.pid} 0 -1 0 0 0 0 0 ${cpu} 0 0 0 20 0 1 0 ${p.start} 1000 ${p.rssPages ?? 10} 0`,
    );
    writeFileSync(join(dir, "cmdline"), p.cmdline.map((a) => `${a}\0`).join(""));
    writeFileSync(join(dir, "cgroup"), p.unit ? `0::/system.slice/${p.unit}\n` : "0::/user.slice\n");
    if (p.exe) symlinkSync(p.exe, join(dir, "exe"));
    for (const [fd, inode] of (p.sockets ?? []).entries()) symlinkSync(`socket:[${inode}]`, join(dir, "fd", String(fd + 3)));
  }

  remove(pid: number) {
    rmSync(join(this.root, String(pid)), { recursive: true, force: true });
  }

  socket(local: string, remote: string, state: "LISTEN" | "ESTABLISHED", inode: number) {
    this.tcp.push(
      `   ${this.tcp.length}: ${hex(local)} ${hex(remote)} ${state === "LISTEN" ? "0A" : "01"} 0:0 00:00000000 00000000 0 0 ${inode} 1 0`,
    );
    this.writeTcp();
  }

  clearSockets() {
    this.tcp = [];
    this.writeTcp();
  }

  private writeTcp() {
    writeFileSync(join(this.root, "net", "tcp"), ["  sl  local_address rem_address   st ...", ...this.tcp].join("\n"));
  }
}

/** "192.0.2.2:5432" as /proc/net/tcp writes it: little-endian address, hex port. */
function hex(endpoint: string): string {
  const [ip = "", port = ""] = endpoint.split(":");
  const address = ip
    .split(".")
    .reverse()
    .map((b) => Number(b).toString(16).padStart(2, "0").toUpperCase())
    .join("");
  return `${address}:${Number(port).toString(16).padStart(4, "0").toUpperCase()}`;
}

describe("service identity", () => {
  const process = (cmdline: string[], exe = "/usr/bin/node") =>
    ({ pid: 1, comm: "node", state: "S", ppid: 0, utime: 0, stime: 0, startTime: 1, rssPages: 0, exe, cmdline, unit: undefined }) as const;

  it("names an interpreter by its script, never by inline code", () => {
    expect(serviceOf(process(["node", "--import", "tsx", "/srv/api/server.ts"])).key).toBe("script:node /srv/api/server.ts");
    expect(serviceOf(process(["node", "--input-type=module", "-e", 'fetch("/v1/agents")', "/data"])).key).toBe("exe:/usr/bin/node");
    expect(serviceOf(process(["python3", "-c", "print('a/b')"], "/usr/bin/python3")).key).toBe("exe:/usr/bin/python3");
  });

  it("takes a script under /dev for a pipe, not a file that names the service", () => {
    expect(serviceOf(process(["bash", "/dev/fd/3"], "/usr/bin/bash")).key).toBe("exe:/usr/bin/bash");
    expect(serviceOf(process(["node", "/dev/stdin"])).key).toBe("exe:/usr/bin/node");
  });

  it("names a script run by dash, Debian's sh, by its script", () => {
    expect(serviceOf(process(["sh", "/srv/loop.sh"], "/usr/bin/dash")).key).toBe("script:dash /srv/loop.sh");
    expect(serviceOf(process(["sh", "-c", "sleep 1"], "/usr/bin/dash")).key).toBe("exe:/usr/bin/dash");
  });

  it("keeps subject ids within 512 characters, distinct for distinct paths", () => {
    const long = (tail: string) => `/${"d".repeat(600)}/${tail}`;
    const a = serviceOf(process([long("a")], long("a"))).key;
    const b = serviceOf(process([long("b")], long("b"))).key;
    expect(a.length).toBeLessThanOrEqual(512);
    expect(a).not.toBe(b);
  });
});

describe("the passive collector, on a fixture /proc", () => {
  it("takes stock first, then reports starts, exits, restarts, deploys, ports and outgoing connections", async () => {
    const proc = new FakeProc();
    const node = proc.executable("node");
    const server = join(proc.bin, "server.js");
    writeFileSync(server, "// build 1");
    proc.add({
      pid: 200,
      comm: "node",
      cmdline: ["node", "--enable-source-maps", server],
      exe: node,
      start: 1000,
      cpu: 100,
      sockets: [11],
    });
    proc.add({
      pid: 400,
      comm: "nginx",
      cmdline: ["nginx: master process"],
      exe: proc.executable("nginx"),
      start: 500,
      unit: "nginx.service",
    });
    proc.add({ pid: 2, comm: "kthreadd", cmdline: [], start: 1 }); // a kernel thread: ignored
    proc.socket("0.0.0.0:8080", "0.0.0.0:0", "LISTEN", 11);

    let now = 1_000_000;
    const state = new MemoryState();
    const collect = async () => {
      const ctx = createTestContext(passive, { procRoot: proc.root, now: () => now, state });
      await passive.collect?.(ctx as never);
      return ctx.emit;
    };

    const first = await collect();
    expect(first.events.map((e) => [e.kind, e.subject.id, e.attributes?.source])).toEqual([
      ["service.observed", `script:node ${server}`, "passive"],
      ["service.observed", "unit:nginx.service", "passive"],
    ]);
    expect(first.metrics.filter((m) => m.name === "service.processes").map((m) => [m.subject?.id, m.subject?.name, m.value])).toEqual(
      expect.arrayContaining([
        [`script:node ${server}`, "server", 1],
        ["unit:nginx.service", "nginx", 1],
      ]),
    );
    expect(first.metrics.find((m) => m.name === "host.memory.available_bytes")?.value).toBe(1_536_000);

    // Ten seconds later: the api restarted on a new build, listening elsewhere; a worker
    // started and opened a connection to the database; nginx is unchanged.
    now += 10_000;
    proc.remove(200);
    proc.clearSockets();
    rmSync(server);
    writeFileSync(server, "// build 2, a new file");
    proc.add({ pid: 201, comm: "node", cmdline: ["node", server], exe: node, start: 2000, sockets: [12, 14] });
    proc.add({ pid: 300, comm: "worker", cmdline: ["/usr/bin/worker"], exe: proc.executable("worker"), start: 2100, sockets: [13] });
    proc.socket("0.0.0.0:8081", "0.0.0.0:0", "LISTEN", 12);
    proc.socket("192.0.2.2:40000", "198.51.100.5:5432", "ESTABLISHED", 13);
    proc.socket("192.0.2.2:8081", "192.0.2.9:51000", "ESTABLISHED", 14); // accepted, not opened: no edge from here

    const second = await collect();
    const api = `script:node ${server}`;
    expect(second.events.map((e) => [e.kind, e.subject.id, e.attributes])).toEqual([
      ["service.observed", `exe:${proc.executable("worker")}`, { source: "passive", exe: proc.executable("worker") }],
      ["process.exited", "pid:200:1000", { pid: "200", service: "server" }],
      ["process.started", "pid:201:2000", { pid: "201", service: "server" }],
      ["process.restarted", api, { oldPid: "200", newPid: "201" }],
      ["service.deployed", api, { exe: node }],
      ["process.started", "pid:300:2100", { pid: "300", service: "worker" }],
      ["port.opened", api, { address: "0.0.0.0:8081" }],
      ["port.closed", api, { address: "0.0.0.0:8080" }],
    ]);
    expect(second.connections).toEqual([
      expect.objectContaining({ localAddress: "192.0.2.2", localPort: 40000, remoteAddress: "198.51.100.5", remotePort: 5432, pid: 300 }),
    ]);
  });

  it("keeps a service across a deploy that replaces the binary in place, and reports the port it closed", async () => {
    const proc = new FakeProc();
    const exe = join(proc.bin, "api");
    writeFileSync(exe, "v1");
    proc.add({ pid: 10, comm: "api", cmdline: [exe], exe, start: 100, sockets: [21] });
    proc.socket("127.0.0.1:9000", "0.0.0.0:0", "LISTEN", 21);
    const state = new MemoryState();
    let now = 5_000;
    const collect = async () => {
      const ctx = createTestContext(passive, { procRoot: proc.root, now: () => now, state });
      await passive.collect?.(ctx as never);
      return ctx.emit;
    };
    await collect();
    now += 10_000;
    proc.remove(10);
    proc.clearSockets();
    rmSync(exe);
    writeFileSync(exe, "v2 with more bytes"); // a new file (new inode) at the same path
    proc.add({ pid: 11, comm: "api", cmdline: [exe], exe, start: 900 });
    const events = (await collect()).events.map((e) => [e.kind, e.subject.id]);
    expect(events).toEqual([
      ["process.exited", "pid:10:100"],
      ["process.started", "pid:11:900"],
      ["process.restarted", `exe:${exe}`],
      ["service.deployed", `exe:${exe}`],
      ["port.closed", `exe:${exe}`],
    ]);
  });

  it("leaves out what the exclude option names, and keeps only what include names", async () => {
    const proc = new FakeProc();
    proc.add({ pid: 1, comm: "noisy", cmdline: ["noisy"], exe: proc.executable("noisy"), start: 1 });
    proc.add({ pid: 2, comm: "app", cmdline: ["app"], exe: proc.executable("app"), start: 1 });
    const names = async (options: unknown) => {
      const ctx = createTestContext(passive, { procRoot: proc.root, options });
      await passive.collect?.(ctx as never);
      return ctx.emit.metrics.filter((m) => m.name === "service.processes").map((m) => m.subject?.name);
    };
    expect(await names({ exclude: ["^noisy$"] })).toEqual(["app"]);
    expect(await names({ include: ["^noisy$"] })).toEqual(["noisy"]);
  });
});

describe("the passive collector, on this machine's /proc", () => {
  it("reports the connections whose rows lie beyond the first page of /proc/net/tcp", async () => {
    const loopback = await openLoopback(300);
    try {
      const emitted = await runCollect(passive, { procRoot: "/proc" });
      const firstPage = firstPagePorts();
      const beyond = loopback.clientPorts.filter((port) => !firstPage.has(port));
      expect(beyond.length).toBeGreaterThan(200);
      const reported = new Set(
        emitted.connections.filter((c) => c.pid === process.pid && c.remotePort === loopback.port).map((c) => c.localPort),
      );
      expect(beyond.filter((port) => !reported.has(port))).toEqual([]);
    } finally {
      await loopback.close();
    }
  }, 30_000);

  it("sees a child process restart, the port it opens, and a connection between two processes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-live-"));
    dirs.push(dir);
    const script = join(dir, "listener.mjs");
    writeFileSync(
      script,
      `import { createServer } from "node:net"; createServer(() => {}).listen(0, "127.0.0.1", function () { process.stdout.write(this.address().port + "\\n"); });`,
    );
    const dialer = join(dir, "dialer.mjs");
    writeFileSync(
      dialer,
      `import { connect } from "node:net"; const s = connect(Number(process.argv[2]), "127.0.0.1", () => process.stdout.write("connected\\n")); setInterval(() => {}, 1000);`,
    );
    const run = (file: string, ...args: string[]) => {
      const child = spawn(process.execPath, [file, ...args], { stdio: ["ignore", "pipe", "inherit"] });
      const line = new Promise<string>((r) => child.stdout?.once("data", (d: Buffer) => r(d.toString().trim())));
      return { child, line };
    };
    const children: ChildProcess[] = [];
    const state = new MemoryState();
    const collect = async () => {
      const ctx = createTestContext(passive, { state, options: { include: ["node"] } });
      await passive.collect?.(ctx as never);
      return ctx.emit;
    };
    try {
      const first = run(script);
      children.push(first.child);
      await first.line;
      await collect();
      first.child.kill("SIGKILL");
      await new Promise((r) => first.child.once("exit", r));
      const second = run(script);
      children.push(second.child);
      const port = await second.line;
      const client = run(dialer, port);
      children.push(client.child);
      await client.line;

      const emitted = await collect();
      const mine = (id: string | undefined) => id?.includes(script) || id?.includes(`pid:${second.child.pid}:`);
      expect(emitted.events.filter((e) => e.subject.id.includes(script)).map((e) => e.kind)).toEqual([
        "process.restarted",
        "port.opened",
        "port.closed",
      ]);
      expect(emitted.events.some((e) => e.kind === "process.exited" && e.attributes?.pid === String(first.child.pid))).toBe(true);
      expect(emitted.events.some((e) => e.kind === "process.started" && mine(e.subject.id))).toBe(true);
      expect(emitted.events.find((e) => e.kind === "port.opened" && e.subject.id.includes(script))?.attributes).toEqual({
        address: `127.0.0.1:${port}`,
      });
      expect(emitted.connections).toEqual(
        expect.arrayContaining([expect.objectContaining({ remoteAddress: "127.0.0.1", remotePort: Number(port), pid: client.child.pid })]),
      );
    } finally {
      for (const child of children) child.kill("SIGKILL");
    }
  }, 30_000);
});

lifecycleSuite(passive, {});
