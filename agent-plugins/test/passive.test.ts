import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statfsSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import passive, { serviceOf } from "../src/passive/index.js";
import { memoryCgroup } from "../src/passive/proc.js";
import { Lineages } from "../src/passive/services.js";
import { createTestContext, lifecycleSuite, MemoryState, runCollect } from "../src/testing.js";
import { firstPagePorts, openLoopback } from "./loopback.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Waits for a condition the test cannot be told of (a process starting), looking every 10 ms. */
async function until(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A /proc tree on disk: enough of each file for the passive collector. */
class FakeProc {
  readonly root = mkdtempSync(join(tmpdir(), "coral-proc-"));
  readonly bin = join(this.root, "..", `${this.root.split("/").pop()}-bin`);
  private tcp: string[] = [];
  /** Seconds since boot, in /proc/uptime: the clock of start times (in ticks of 1/100 s). */
  private uptime = 100_000;

  constructor() {
    dirs.push(this.root, this.bin);
    mkdirSync(join(this.root, "net"));
    mkdirSync(this.bin);
    writeFileSync(join(this.root, "stat"), "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\n");
    writeFileSync(join(this.root, "meminfo"), "MemTotal: 2000 kB\nMemAvailable: 1500 kB\n");
    writeFileSync(join(this.root, "loadavg"), "0.50 0.40 0.30 1/100 999\n");
    this.writeTcp();
    this.advance(0);
  }

  /** Moves /proc/uptime on. */
  advance(seconds: number) {
    this.uptime += seconds;
    writeFileSync(join(this.root, "uptime"), `${this.uptime.toFixed(2)} 1000.00\n`);
  }

  /** The start time, in clock ticks after boot, of a process that started `seconds` ago. */
  ago(seconds: number): number {
    return Math.round((this.uptime - seconds) * 100);
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
    ppid?: number;
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
      `${p.pid} (${p.comm}) S ${p.ppid ?? 1} ${p.pid} ${p.pid} 0 -1 0 0 0 0 0 ${cpu} 0 0 0 20 0 1 0 ${p.start} 1000 ${p.rssPages ?? 10} 0`,
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
    ({
      pid: 1,
      comm: "node",
      state: "S",
      ppid: 0,
      utime: 0,
      stime: 0,
      startTime: 1,
      rssPages: 0,
      exe,
      cmdline,
      unit: undefined,
      cgroup: undefined,
    }) as const;

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
    expect(first.events.map((e) => [e.kind, e.subject.id, e.attributes?.source, e.attributes?.listening])).toEqual([
      // The sockets it listens on come with it: how the coordinator knows where to find it.
      ["service.observed", `script:node ${server}`, "passive", "0.0.0.0:8080"],
      ["service.observed", "unit:nginx.service", "passive", undefined],
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
      // One instance and none of it survived: the whole service restarted (remaining counts the new one).
      ["process.exited", "pid:200:1000", { pid: "200", service: "server", serviceKey: api, remaining: "1" }],
      ["process.started", "pid:201:2000", { pid: "201", service: "server", serviceKey: api }],
      ["process.restarted", api, { oldPid: "200", newPid: "201", survivors: "0" }],
      ["service.deployed", api, { exe: node }],
      ["process.started", "pid:300:2100", { pid: "300", service: "worker", serviceKey: `exe:${proc.executable("worker")}` }],
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

/** One plugin instance collecting from a fixture; tick() moves its clock and /proc/uptime on together. */
function collector(proc: FakeProc, init: { options?: unknown; state?: MemoryState } = {}) {
  const state = init.state ?? new MemoryState();
  let now = 1_000_000;
  const context = () => createTestContext(passive, { procRoot: proc.root, now: () => now, state, options: init.options });
  return {
    state,
    tick(seconds = 10) {
      now += seconds * 1000;
      proc.advance(seconds);
    },
    async collect() {
      const ctx = context();
      await passive.collect?.(ctx as never);
      return ctx.emit;
    },
    async stop() {
      await passive.stop?.(context() as never);
    },
  };
}

type Emitted = Awaited<ReturnType<ReturnType<typeof collector>["collect"]>>;
const events = (emitted: Emitted) => emitted.events.map((e) => [e.kind, e.subject.id]);
const transient = (emitted: Emitted) =>
  emitted.metrics.filter((m) => m.name === "service.transient_processes").map((m) => [m.subject?.id, m.value, m.labels?.commands]);
const serviceMetrics = (emitted: Emitted, name: string) =>
  emitted.metrics.filter((m) => m.name === name && m.subject?.kind === "service").map((m) => [m.subject?.id, m.value]);

describe("what the passive collector calls a service", () => {
  it("counts a service shell's short-lived children under it, and reports nothing else of them", async () => {
    const proc = new FakeProc();
    const sleep = proc.executable("sleep");
    const dash = proc.executable("dash");
    const loop = "/srv/loop.sh";
    proc.add({ pid: 100, comm: "sh", cmdline: ["sh", loop], exe: dash, start: proc.ago(5000) });
    proc.add({ pid: 90, comm: "sleep", cmdline: ["sleep", "5"], exe: sleep, ppid: 100, start: proc.ago(1) });
    const host = collector(proc);
    const first = await host.collect();
    expect(events(first)).toEqual([["service.observed", `script:dash ${loop}`]]); // the sleep at the first collect: neither news nor counted
    expect(transient(first)).toEqual([]);

    host.tick();
    proc.remove(90);
    proc.add({ pid: 101, comm: "sleep", cmdline: ["sleep", "5"], exe: sleep, ppid: 100, start: proc.ago(1) });
    const second = await host.collect();
    expect(events(second)).toEqual([]);
    expect(transient(second)).toEqual([[`script:dash ${loop}`, 1, "sleep"]]);
    expect(second.metrics.find((m) => m.name === "service.transient_processes")?.subject).toEqual({
      kind: "service",
      id: `script:dash ${loop}`,
      name: "loop.sh",
    });
    expect(serviceMetrics(second, "service.processes")).toEqual([[`script:dash ${loop}`, 1]]);

    host.tick();
    proc.remove(101);
    proc.add({ pid: 102, comm: "sleep", cmdline: ["sleep", "5"], exe: sleep, ppid: 100, start: proc.ago(3) });
    proc.add({ pid: 103, comm: "sh", cmdline: ["sh", "-c", "date; sleep 5"], exe: dash, ppid: 100, start: proc.ago(2) });
    proc.add({ pid: 104, comm: "sleep", cmdline: ["sleep", "5"], exe: sleep, ppid: 103, start: proc.ago(1) });
    const third = await host.collect();
    expect(events(third)).toEqual([]); // no process.exited for 101, no process.restarted for sleep
    expect(transient(third)).toEqual([[`script:dash ${loop}`, 3, "sleep,dash"]]);

    host.tick();
    for (const pid of [102, 103, 104]) proc.remove(pid);
    expect(transient(await host.collect())).toEqual([[`script:dash ${loop}`, 0, undefined]]); // the burst's end, once
    host.tick();
    expect(transient(await host.collect())).toEqual([]);
  });

  it("makes a process a service once it has run serviceAfterMs, and reports it started only if it started after the first collect", async () => {
    const proc = new FakeProc();
    const worker = proc.executable("worker");
    const indexer = proc.executable("indexer");
    proc.add({ pid: 200, comm: "worker", cmdline: [worker], exe: worker, start: proc.ago(30) });
    const host = collector(proc);
    expect(events(await host.collect())).toEqual([]); // 30 s old: not yet a service

    host.tick();
    proc.add({ pid: 300, comm: "indexer", cmdline: [indexer], exe: indexer, start: proc.ago(2) });
    const second = await host.collect();
    expect(events(second)).toEqual([]);
    expect(transient(second)).toEqual([["host", 1, "indexer"]]); // no service above it

    host.tick(30); // worker: 70 s
    expect(events(await host.collect())).toEqual([["service.observed", `exe:${worker}`]]); // running at the first collect: no start

    host.tick(30); // indexer: 62 s
    const fourth = await host.collect();
    expect(events(fourth)).toEqual([
      ["service.observed", `exe:${indexer}`],
      ["process.started", `pid:300:${proc.ago(62)}`],
    ]);
    expect(serviceMetrics(fourth, "service.processes")).toEqual([
      [`exe:${worker}`, 1],
      [`exe:${indexer}`, 1],
    ]);

    // A shorter serviceAfterMs: the indexer would have been a service at 2 s.
    const quick = new FakeProc();
    quick.add({ pid: 300, comm: "indexer", cmdline: [indexer], exe: indexer, start: quick.ago(2) });
    expect(events(await collector(quick, { options: { serviceAfterMs: 1000 } }).collect())).toEqual([
      ["service.observed", `exe:${indexer}`],
    ]);
  });

  it("makes a young process that listens a service at once", async () => {
    const proc = new FakeProc();
    const host = collector(proc);
    await host.collect();
    host.tick();
    const api = proc.executable("api");
    proc.add({ pid: 400, comm: "api", cmdline: [api], exe: api, start: proc.ago(1), sockets: [41] });
    proc.socket("0.0.0.0:8080", "0.0.0.0:0", "LISTEN", 41);
    expect(events(await host.collect())).toEqual([
      ["service.observed", `exe:${api}`],
      ["process.started", `pid:400:${proc.ago(1)}`],
      ["port.opened", `exe:${api}`],
    ]);
  });

  it("still reports each restart of a service that crash-loops, once it has been a service", async () => {
    const proc = new FakeProc();
    const supervisor = proc.executable("supervisord");
    const worker = proc.executable("worker");
    proc.add({ pid: 10, comm: "supervisord", cmdline: [supervisor], exe: supervisor, start: proc.ago(9000) });
    proc.add({ pid: 11, comm: "worker", cmdline: [worker], exe: worker, ppid: 10, start: proc.ago(8000) });
    const host = collector(proc);
    await host.collect();
    for (const [gone, fresh] of [
      [11, 12],
      [12, 13],
    ] as const) {
      host.tick();
      proc.remove(gone);
      proc.add({ pid: fresh, comm: "worker", cmdline: [worker], exe: worker, ppid: 10, start: proc.ago(1) });
      const emitted = await host.collect();
      expect(emitted.events.map((e) => [e.kind, e.subject.id, e.attributes])).toEqual([
        [
          "process.exited",
          expect.stringMatching(`^pid:${gone}:`),
          { pid: String(gone), service: "worker", serviceKey: `exe:${worker}`, remaining: "1" },
        ],
        ["process.started", `pid:${fresh}:${proc.ago(1)}`, { pid: String(fresh), service: "worker", serviceKey: `exe:${worker}` }],
        ["process.restarted", `exe:${worker}`, { oldPid: String(gone), newPid: String(fresh), survivors: "0" }],
      ]);
      expect(transient(emitted)).toEqual([]);
    }
  });

  it("keeps the established services in the state store, so that a restarted agent still sees the crash loop", async () => {
    const proc = new FakeProc();
    const supervisor = proc.executable("supervisord");
    const worker = proc.executable("worker");
    proc.add({ pid: 10, comm: "supervisord", cmdline: [supervisor], exe: supervisor, start: proc.ago(9000) });
    proc.add({ pid: 11, comm: "worker", cmdline: [worker], exe: worker, ppid: 10, start: proc.ago(8000) });
    const before = collector(proc);
    await before.collect();
    await before.stop();
    const established = before.state.get<{ version: number; lineages: string[] }>("established");
    expect(established?.lineages).toHaveLength(2); // supervisord under nothing, worker under supervisord

    // The agent restarts (a new state store read from the same file) while the worker crash-loops.
    const crashLoop = async (state: MemoryState) => {
      const host = collector(proc, { state });
      for (const pid of [11, 12, 13]) proc.remove(pid);
      proc.add({ pid: 12, comm: "worker", cmdline: [worker], exe: worker, ppid: 10, start: proc.ago(1) });
      const first = await host.collect();
      host.tick();
      proc.remove(12);
      proc.add({ pid: 13, comm: "worker", cmdline: [worker], exe: worker, ppid: 10, start: proc.ago(1) });
      const second = await host.collect();
      await host.stop();
      return [first, second] as const;
    };
    const restored = new MemoryState();
    for (const [key, value] of before.state.values) restored.set(key, value);
    const [first, second] = await crashLoop(restored);
    expect(events(first)).toContainEqual(["service.observed", `exe:${worker}`]);
    expect(events(second).map(([kind]) => kind)).toEqual(["process.exited", "process.started", "process.restarted"]);

    // Without the state, the worker is one more short-lived process under supervisord.
    const [, forgotten] = await crashLoop(new MemoryState());
    expect(events(forgotten)).toEqual([]);
    expect(transient(forgotten)).toEqual([[`exe:${supervisor}`, 1, "worker"]]);
  });

  it("keeps at most 1,024 established lineages, the least recently seen going first, and none from another boot", () => {
    const state = new MemoryState();
    const lineages = new Lineages(state, "boot-1");
    const supervisor = { pid: 10, startTime: 500 };
    for (let i = 0; i < 1100; i++) lineages.touch(Lineages.of(supervisor, `exe:/srv/${i}`));
    lineages.touch(Lineages.of(supervisor, "exe:/srv/0")); // seen again: kept
    lineages.save();
    const saved = state.get<{ lineages: string[] }>("established")?.lineages ?? [];
    expect(saved).toHaveLength(1024);
    expect(saved.at(-1)).toBe(Lineages.of(supervisor, "exe:/srv/0"));
    expect(saved).not.toContain(Lineages.of(supervisor, "exe:/srv/1"));
    expect(JSON.stringify(state.values.get("established")).length).toBeLessThan(16 * 1024);
    expect(new Lineages(state, "boot-1").has(Lineages.of(supervisor, "exe:/srv/1099"))).toBe(true);
    expect(Lineages.of({ pid: 10, startTime: 501 }, "exe:/srv/1099")).not.toBe(Lineages.of(supervisor, "exe:/srv/1099")); // pid reused
    expect(new Lineages(state, "boot-2").has(Lineages.of(supervisor, "exe:/srv/1099"))).toBe(false); // rebooted: the parents are gone
    state.set("established", { version: 1, bootId: "boot-1", lineages: "garbage" });
    expect(new Lineages(state, "boot-1").has(Lineages.of(supervisor, "exe:/srv/1099"))).toBe(false); // a damaged store is started afresh
  });

  it("makes a program a service under the parent process where it was one, not everywhere it runs", async () => {
    const proc = new FakeProc();
    const shim = proc.executable("shim");
    const sleep = proc.executable("sleep");
    const dash = proc.executable("dash");
    proc.add({ pid: 10, comm: "shim", cmdline: [shim], exe: shim, start: proc.ago(9000) });
    proc.add({ pid: 11, comm: "sleep", cmdline: ["sleep", "infinity"], exe: sleep, ppid: 10, start: proc.ago(9000) }); // a container's main process
    proc.add({ pid: 20, comm: "sh", cmdline: ["sh", "/srv/loop.sh"], exe: dash, start: proc.ago(9000) });
    proc.add({ pid: 30, comm: "shim", cmdline: [shim], exe: shim, start: proc.ago(9000) }); // another container's
    const host = collector(proc);
    expect(events(await host.collect())).toContainEqual(["service.observed", `exe:${sleep}`]);
    host.tick();
    proc.remove(11);
    proc.add({ pid: 12, comm: "sleep", cmdline: ["sleep", "infinity"], exe: sleep, ppid: 10, start: proc.ago(1) }); // restarted
    proc.add({ pid: 21, comm: "sleep", cmdline: ["sleep", "1"], exe: sleep, ppid: 20, start: proc.ago(1) });
    proc.add({ pid: 31, comm: "sleep", cmdline: ["sleep", "1"], exe: sleep, ppid: 30, start: proc.ago(1) });
    const emitted = await host.collect();
    expect(events(emitted)).toEqual([
      ["process.exited", `pid:11:${proc.ago(9010)}`],
      ["process.started", `pid:12:${proc.ago(1)}`],
      ["process.restarted", `exe:${sleep}`],
    ]);
    expect(transient(emitted)).toEqual([
      ["script:dash /srv/loop.sh", 1, "sleep"],
      [`exe:${shim}`, 1, "sleep"],
    ]);
  });

  it("makes a systemd service's main process a service at once, and its own children only by age or a port", async () => {
    const proc = new FakeProc();
    const systemd = proc.executable("systemd");
    const nginx = proc.executable("nginx");
    const sleep = proc.executable("sleep");
    proc.add({ pid: 1, comm: "systemd", cmdline: [systemd], exe: systemd, ppid: 0, start: proc.ago(9000) });
    const host = collector(proc);
    await host.collect();
    host.tick();
    const unit = "nginx.service";
    proc.add({ pid: 50, comm: "nginx", cmdline: ["nginx: master process"], exe: nginx, unit, start: proc.ago(2) });
    proc.add({ pid: 51, comm: "nginx", cmdline: ["nginx: worker process"], exe: nginx, unit, ppid: 50, start: proc.ago(1) });
    proc.add({ pid: 52, comm: "sleep", cmdline: ["sleep", "3"], exe: sleep, unit, ppid: 50, start: proc.ago(1) });
    const second = await host.collect();
    expect(events(second)).toEqual([
      ["service.observed", "unit:nginx.service"],
      ["process.started", `pid:50:${proc.ago(2)}`],
    ]);
    expect(transient(second)).toEqual([["unit:nginx.service", 2, "nginx,sleep"]]);
    host.tick(60);
    proc.remove(52);
    const third = await host.collect();
    expect(events(third)).toEqual([["process.started", `pid:51:${proc.ago(61)}`]]); // the worker, a minute on
    expect(serviceMetrics(third, "service.processes")).toContainEqual(["unit:nginx.service", 2]);
  });

  it("makes a service of what the user names in the services option, from its start", async () => {
    const proc = new FakeProc();
    const java = proc.executable("java");
    const host = collector(proc, { options: { services: [{ name: "billing", match: "billing\\.jar$" }] } });
    await host.collect();
    host.tick();
    proc.add({ pid: 70, comm: "java", cmdline: ["java", "-jar", "/opt/billing.jar"], exe: java, start: proc.ago(1) });
    proc.add({ pid: 71, comm: "java", cmdline: ["java", "-jar", "/opt/report.jar"], exe: java, start: proc.ago(1) });
    const emitted = await host.collect();
    expect(emitted.events.map((e) => [e.kind, e.subject])).toEqual([
      ["service.observed", { kind: "service", id: "script:java /opt/billing.jar", name: "billing" }],
      ["process.started", { kind: "process", id: `pid:70:${proc.ago(1)}`, name: "billing" }],
    ]);
    expect(transient(emitted)).toEqual([["host", 1, "report"]]);
    expect(() => createTestContext(passive, { options: { services: [{ name: "x", match: "(" }] } })).toThrow(
      /services\.0\.match: not a valid regular expression/,
    );
  });

  it("reports a short-lived process's connection as its service's", async () => {
    const proc = new FakeProc();
    const cron = proc.executable("cron");
    const curl = proc.executable("curl");
    proc.add({ pid: 30, comm: "cron", cmdline: [cron], exe: cron, start: proc.ago(9000) });
    const host = collector(proc);
    await host.collect();
    host.tick();
    proc.add({ pid: 31, comm: "curl", cmdline: ["curl", "https://example.org"], exe: curl, ppid: 30, start: proc.ago(1), sockets: [61] });
    proc.socket("192.0.2.2:41000", "203.0.113.80:443", "ESTABLISHED", 61);
    const emitted = await host.collect();
    expect(emitted.connections).toEqual([
      expect.objectContaining({
        remotePort: 443,
        pid: 31,
        processName: "curl",
        subject: { kind: "service", id: `exe:${cron}`, name: "cron" },
      }),
    ]);
    expect(events(emitted)).toEqual([]);
  });
});

describe("what a host and its services have left", () => {
  it("reports disk space per data filesystem once per device, and a service's memory limit and OOM kills from its own cgroup", async () => {
    const proc = new FakeProc();
    const data = mkdtempSync(join(tmpdir(), "coral-disk-"));
    const scratch = mkdtempSync(join(tmpdir(), "coral-scratch-"));
    const cgroups = mkdtempSync(join(tmpdir(), "coral-cgroups-"));
    dirs.push(data, scratch, cgroups);
    mkdirSync(join(proc.root, "self"));
    writeFileSync(
      join(proc.root, "self", "mounts"),
      [
        `/dev/vda1 ${data} ext4 rw,relatime 0 0`,
        `/dev/vda1 ${data}/bound ext4 rw,relatime 0 0`, // a bind mount of the same device: counted once
        "proc /proc proc rw 0 0",
        `tmpfs ${scratch} tmpfs rw 0 0`, // not a data filesystem, but named in the mounts option
        `tmpfs ${data}\\040with\\040spaces tmpfs rw 0 0`, // neither
      ].join("\n"),
    );
    // api has a cgroup of its own with a limit; two services share a login session's.
    const api = join(cgroups, "system.slice", "api.service");
    mkdirSync(api, { recursive: true });
    writeFileSync(join(api, "memory.max"), "104857600\n");
    writeFileSync(join(api, "memory.peak"), "104800000\n");
    writeFileSync(join(api, "memory.events"), "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n");
    const session = join(cgroups, "user.slice");
    mkdirSync(session, { recursive: true });
    writeFileSync(join(session, "memory.max"), "max\n");
    writeFileSync(join(session, "memory.events"), "oom_kill 0\n");
    proc.add({ pid: 10, comm: "api", cmdline: ["/srv/api"], exe: proc.executable("api"), start: 10, unit: "api.service" });
    proc.add({ pid: 20, comm: "vim", cmdline: ["vim"], exe: proc.executable("vim"), start: 10 });
    proc.add({ pid: 21, comm: "top", cmdline: ["top"], exe: proc.executable("top"), start: 10 });

    let now = 1_000_000;
    const state = new MemoryState();
    const options = { cgroupRoot: cgroups, mounts: [scratch] };
    const collect = async () => {
      const ctx = createTestContext(passive, { procRoot: proc.root, now: () => now, state, options });
      await passive.collect?.(ctx as never);
      return ctx.emit;
    };
    const first = await collect();
    const disks = first.metrics.filter((m) => m.name.startsWith("host.disk."));
    expect(new Set(disks.map((m) => m.labels?.mount))).toEqual(new Set([data, scratch]));
    const space = statfsSync(data);
    const of = (name: string) => disks.find((m) => m.name === name && m.labels?.mount === data)?.value;
    expect(of("host.disk.total_bytes")).toBe(space.blocks * space.bsize);
    expect(of("host.disk.used_bytes")).toBe((space.blocks - space.bfree) * space.bsize);
    expect(first.metrics.filter((m) => m.name === "service.memory.limit_bytes").map((m) => [m.subject?.id, m.value])).toEqual([
      ["unit:api.service", 104_857_600],
    ]);
    // The kill before the first collect is the baseline, not news.
    expect(first.events.filter((e) => e.kind === "service.oom_killed")).toEqual([]);

    now += 10_000;
    writeFileSync(join(api, "memory.events"), "low 0\nhigh 0\nmax 30\noom 3\noom_kill 3\n");
    writeFileSync(join(session, "memory.events"), "oom_kill 5\n"); // shared: no one service's
    const second = await collect();
    expect(second.events.filter((e) => e.kind === "service.oom_killed").map((e) => [e.subject.id, e.attributes])).toEqual([
      ["unit:api.service", { kills: "2", limitBytes: "104857600", peakBytes: "104800000" }],
    ]);
    now += 10_000;
    expect((await collect()).events.filter((e) => e.kind === "service.oom_killed")).toEqual([]);
  });

  it("sees the kernel OOM-kill a process of a service under a real memory cgroup limit", async (context) => {
    const cgroup = ownMemoryCgroup();
    if (!cgroup) {
      if (process.env.CORAL_REQUIRE_ALL === "1")
        throw new Error("no writable memory cgroup (run as root on a host with the memory controller)");
      context.skip();
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "coral-oom-"));
    dirs.push(dir);
    const child = join(cgroup.dir, `coral-oom-${process.pid}`);
    mkdirSync(child);
    try {
      writeFileSync(join(child, cgroup.limitFile), String(64 * 1024 * 1024));
      // A service that, when told to, runs a pipeline whose `tail` holds 300 MB: the kernel kills it at the limit.
      const service = join(dir, "coral-oom-svc");
      const trigger = join(dir, "go");
      writeFileSync(
        service,
        `#!/bin/sh\necho $$ > "${child}/cgroup.procs"\nwhile :; do\n  if [ -e "${trigger}" ]; then rm -f "${trigger}"; head -c 300000000 /dev/zero | tail > /dev/null; fi\n  sleep 0.1\ndone\n`,
        { mode: 0o755 },
      );
      const running = spawn(service, [], { stdio: "ignore", detached: true });
      try {
        const pid = running.pid as number;
        await until(() => readFileSync(`/proc/${pid}/cgroup`, "utf8").includes(`coral-oom-${process.pid}`));
        let now = Date.now();
        const state = new MemoryState();
        const options = { include: ["^coral-oom-svc$"], serviceAfterMs: 0, cgroupRoot: "/sys/fs/cgroup", disks: false };
        const collect = async () => {
          const ctx = createTestContext(passive, { procRoot: "/proc", now: () => now, state, options });
          await passive.collect?.(ctx as never);
          return ctx.emit;
        };
        const first = await collect();
        expect(first.metrics.find((m) => m.name === "service.memory.limit_bytes")?.value).toBe(64 * 1024 * 1024);
        writeFileSync(trigger, "");
        await until(() => readFileSync(join(child, cgroup.eventsFile), "utf8").match(/^oom_kill [1-9]/m) !== null);
        now += 10_000;
        const second = await collect();
        const killed = second.events.filter((e) => e.kind === "service.oom_killed");
        expect(killed).toHaveLength(1);
        expect(killed[0]?.attributes).toMatchObject({ kills: "1", limitBytes: String(64 * 1024 * 1024) });
        expect(Number(killed[0]?.attributes?.peakBytes)).toBeGreaterThan(60 * 1024 * 1024);
      } finally {
        process.kill(-(running.pid as number), "SIGKILL");
        await until(() => readFileSync(join(child, "cgroup.procs"), "utf8").trim() === "");
      }
    } finally {
      rmdirSync(child);
    }
  }, 30_000);
});

/** This process's memory cgroup, where it can make a child with a limit: v1 (hybrid hosts) or v2 with the controller delegated. */
function ownMemoryCgroup(): { dir: string; limitFile: string; eventsFile: string } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const own = memoryCgroup(readFileSync("/proc/self/cgroup", "utf8")) ?? "";
  const v1 = join("/sys/fs/cgroup", own.startsWith("memory") ? own : "memory");
  if (existsSync(join(v1, "memory.limit_in_bytes")))
    return { dir: v1, limitFile: "memory.limit_in_bytes", eventsFile: "memory.oom_control" };
  const v2 = join("/sys/fs/cgroup", own.startsWith("memory") ? "" : own);
  if (existsSync(join(v2, "cgroup.subtree_control")) && readFileSync(join(v2, "cgroup.subtree_control"), "utf8").includes("memory"))
    return { dir: v2, limitFile: "memory.max", eventsFile: "memory.events" };
  return undefined;
}

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

  it("counts a real shell's sleep children under it, and reports none of them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-live-"));
    dirs.push(dir);
    const script = join(dir, "spawner.sh");
    writeFileSync(script, "while read -r _; do sleep 30 & done\n"); // a sleep per line read
    const shell = spawn("sh", [script], { stdio: ["pipe", "ignore", "inherit"], detached: true });
    const pid = shell.pid as number;
    const children = () => readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean);
    const state = new MemoryState();
    // This run's script only: other runs of this suite may have theirs running beside it.
    const options = { services: [{ name: "spawner", match: `${script.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$` }] };
    const mine = (subject: { id: string } | undefined) => subject?.id.endsWith(` ${script}`) === true;
    const collect = async () => {
      const ctx = createTestContext(passive, { state, options });
      await passive.collect?.(ctx as never);
      return ctx.emit;
    };
    try {
      await new Promise((resolve) => shell.once("spawn", resolve));
      const first = await collect();
      expect(first.events.filter((e) => mine(e.subject)).map((e) => [e.kind, e.subject.name])).toEqual([["service.observed", "spawner"]]);
      shell.stdin?.write("\n\n");
      // Each child is a fork of the shell until it has exec'd sleep.
      const comm = (child: string) => readFileSync(`/proc/${child}/comm`, "utf8").trim();
      await until(() => children().length === 2 && children().every((child) => comm(child) === "sleep"));
      const second = await collect();
      const sleeps = children();
      expect(second.metrics.filter((m) => m.name === "service.transient_processes" && mine(m.subject))).toEqual([
        expect.objectContaining({ value: 2, labels: { commands: "sleep" } }),
      ]);
      expect(second.events.filter((e) => sleeps.includes(e.attributes?.pid ?? ""))).toEqual([]);
      expect(second.events.filter((e) => mine(e.subject))).toEqual([]);
    } finally {
      process.kill(-pid, "SIGKILL");
      await new Promise((resolve) => (shell.exitCode === null && shell.signalCode === null ? shell.once("exit", resolve) : resolve(null)));
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
