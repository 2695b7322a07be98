import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ProcReader,
  parseLastPid,
  parseLoadavg,
  parseMeminfo,
  parseNetTcp,
  parseProcStat,
  parseStat,
  sockstatInUse,
  tcpChurn,
  unitFromCgroup,
} from "../src/passive/proc.js";
import { firstPagePorts, openLoopback } from "./loopback.js";

describe("/proc parsers", () => {
  it("reads a stat line whose command name holds spaces and parentheses", () => {
    const line =
      "4242 (my (weird) app) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 3 0 987654 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
    expect(parseStat(line)).toEqual({
      pid: 4242,
      comm: "my (weird) app",
      state: "S",
      ppid: 1,
      utime: 150,
      stime: 25,
      startTime: 987654,
      rssPages: 2048,
    });
    expect(parseStat("garbage")).toBeUndefined();
  });

  it("finds the systemd unit in cgroup v1 and v2 paths", () => {
    expect(unitFromCgroup("0::/system.slice/nginx.service\n")).toBe("nginx.service");
    expect(unitFromCgroup("1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n0::/\n")).toBe("session-3.scope");
    expect(unitFromCgroup("0::/\n")).toBeUndefined();
  });

  it("decodes /proc/net/tcp and tcp6 addresses, ports and states", () => {
    const tcp = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1596 1 0 100 0 0 10 0",
      "   1: 020200C0:C6B0 507100CB:01BB 01 00000000:00000000 02:00000047 00000000     0        0 415380 2 0 20 4 8 47 -1",
    ].join("\n");
    expect(parseNetTcp(tcp, 4)).toEqual([
      { family: 4, localAddress: "0.0.0.0", localPort: 2024, remoteAddress: "0.0.0.0", remotePort: 0, state: "LISTEN", inode: 1596 },
      {
        family: 4,
        localAddress: "192.0.2.2",
        localPort: 50864,
        remoteAddress: "203.0.113.80",
        remotePort: 443,
        state: "ESTABLISHED",
        inode: 415380,
      },
    ]);
    const tcp6 = [
      "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0 100 0 0 10 0",
      "   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 778 1 0 20 4 30 10 -1",
      "   2: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 779 1 0 100 0 0 10 0",
    ].join("\n");
    expect(parseNetTcp(tcp6, 6).map((s) => [s.localAddress, s.localPort, s.remoteAddress, s.state])).toEqual([
      ["::1", 8080, "::", "LISTEN"],
      ["127.0.0.1", 8080, "127.0.0.1", "ESTABLISHED"],
      ["2001:db8::1", 80, "::", "LISTEN"],
    ]);
  });

  it("skips a TCP table that /proc/net/sockstat says is empty", () => {
    const root = mkdtempSync(join(tmpdir(), "coral-proc-"));
    try {
      mkdirSync(join(root, "net"));
      const line = (port: string) =>
        `   0: 0100007F:${port} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0`;
      writeFileSync(join(root, "net", "tcp"), `  sl  local_address rem_address   st\n${line("1F90")}\n`);
      writeFileSync(join(root, "net", "tcp6"), "  sl  local_address rem_address   st\n");
      expect(new ProcReader(root).tcpSockets().map((s) => s.localPort)).toEqual([8080]); // no sockstat: read
      writeFileSync(join(root, "net", "sockstat"), "sockets: used 5\nTCP: inuse 0 orphan 0 tw 3 alloc 1 mem 0\nUDP: inuse 2 mem 1\n");
      expect(new ProcReader(root).tcpSockets()).toEqual([]);
      const sockstat = "sockets: used 8\nTCP: inuse 7 orphan 0 tw 0 alloc 9 mem 1\nUDP: inuse 2 mem 1\n";
      expect([sockstatInUse(sockstat, "TCP"), sockstatInUse(sockstat, "UDP"), sockstatInUse(sockstat, "TCP6")]).toEqual([7, 2, undefined]);
      expect(sockstatInUse("TCP6: inuse 3\nUDP6: inuse 0\n", "TCP6")).toBe(3);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("reads the TCP table again only when a counter, a socket count or the processes moved, and every 6th time", () => {
    const root = mkdtempSync(join(tmpdir(), "coral-proc-"));
    try {
      mkdirSync(join(root, "net"));
      const table = (...ports: string[]) =>
        writeFileSync(
          join(root, "net", "tcp"),
          [
            "  sl  local_address rem_address   st",
            ...ports.map(
              (port) =>
                `   0: 0100007F:${port} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0`,
            ),
          ].join("\n"),
        );
      const sockstat = (inUse: number) => writeFileSync(join(root, "net", "sockstat"), `TCP: inuse ${inUse} orphan 0 tw 0 alloc 9 mem 1\n`);
      const snmp = (activeOpens: number) =>
        writeFileSync(
          join(root, "net", "snmp"),
          "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs\n" +
            `Tcp: 1 200 120000 -1 ${activeOpens} 5 0 0 1 ${Math.random()}\n`, // InSegs moves all the time: no reason to read
        );
      writeFileSync(join(root, "net", "sockstat6"), "TCP6: inuse 0\n");
      table("1F90");
      sockstat(1);
      snmp(10);
      const reader = new ProcReader(root);
      const ports = () => reader.tcpSockets().map((s) => s.localPort);
      expect(ports()).toEqual([8080]);
      table("1F91"); // a listening socket closed and another opened, and nothing else moved
      expect([ports(), ports(), ports(), ports(), ports()]).toEqual(Array(5).fill([8080]));
      expect(ports()).toEqual([8081]); // the sixth call reads it again anyway
      table("1F91", "0050");
      sockstat(2);
      expect(ports()).toEqual([8081, 80]);
      table("1F91");
      snmp(11); // a connection opened (and the listener on 80 went)
      expect(ports()).toEqual([8081]);
      table("0050");
      reader.processes(); // a process started (its listing is empty here: nothing moved)
      expect(ports()).toEqual([8081]);
      mkdirSync(join(root, "7"));
      writeFileSync(join(root, "7", "stat"), "7 (api) S 1 0 0 0 -1 0 0 0 0 0 5 0 0 0 20 0 1 0 100 0 10 0\n");
      reader.processes();
      expect(ports()).toEqual([80]);
      expect(tcpChurn(readFileSync(join(root, "net", "snmp"), "utf8"))).toBe("11 5 0 0 1");
      expect(tcpChurn("Udp: InDatagrams\nUdp: 1\n")).toBe("");
      expect(tcpChurn("Tcp: ActiveOpens CurrEstab\n")).toBe(""); // a header with no values
      expect(tcpChurn("Tcp: ActiveOpens CurrEstab\nTcp: 4 2")).toBe("4    2");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("reads a kernel thread again only once its pid may have gone to another process", () => {
    const root = mkdtempSync(join(tmpdir(), "coral-proc-"));
    const stat = (pid: number, comm: string, ppid: number, utime: number, start: number) =>
      `${pid} (${comm}) S ${ppid} 0 0 0 -1 0 0 0 0 0 ${utime} 0 0 0 20 0 1 0 ${start} 0 10 0\n`;
    const proc = (pid: number, text: string, cmdline = "") => {
      mkdirSync(join(root, String(pid)), { recursive: true });
      writeFileSync(join(root, String(pid), "stat"), text);
      writeFileSync(join(root, String(pid), "cmdline"), cmdline);
      writeFileSync(join(root, String(pid), "cgroup"), "0::/\n");
    };
    const lastPid = (pid: number) => writeFileSync(join(root, "loadavg"), `0.00 0.00 0.00 1/80 ${pid}\n`);
    const reader = new ProcReader(root);
    try {
      proc(2, stat(2, "kthreadd", 0, 1, 1));
      proc(50, stat(50, "kworker/0:1", 2, 5, 100));
      proc(70, stat(70, "app", 1, 7, 200), "app\0");
      lastPid(100);
      const view = () => reader.processes().map((p) => `${p.pid} ${p.comm} ${p.utime} ${p.cmdline.join(" ")}`.trim());
      expect(view()).toEqual(["2 kthreadd 1", "50 kworker/0:1 5", "70 app 7 app"]);
      // Pid 50 goes to a new process, but the kernel has not handed 50 out since: impossible, so
      // not looked at; the user process is read every time.
      proc(50, stat(50, "reused", 1, 9, 300), "reused\0");
      proc(70, stat(70, "app", 1, 8, 200), "app\0");
      lastPid(110);
      expect(view()).toEqual(["2 kthreadd 1", "50 kworker/0:1 5", "70 app 8 app"]);
      // Pids wrapped around past 50 (110 -> 60): read again, and found to be a new process.
      lastPid(60);
      expect(view()).toEqual(["2 kthreadd 1", "50 reused 9 reused", "70 app 8 app"]);
    } finally {
      reader.close();
      rmSync(root, { recursive: true, force: true });
    }
    expect(parseLastPid("0.10 0.20 0.30 2/108 17529\n")).toBe(17529);
    expect(parseLastPid("0.10 0.20 0.30\n")).toBeUndefined();
  });

  it("lists /proc again only once a pid was handed out, where it shows the agent's own pid namespace", () => {
    const root = mkdtempSync(join(tmpdir(), "coral-proc-"));
    const proc = (pid: number, comm: string) => {
      mkdirSync(join(root, String(pid)), { recursive: true });
      writeFileSync(join(root, String(pid), "stat"), `${pid} (${comm}) S 1 0 0 0 -1 0 0 0 0 0 7 0 0 0 20 0 1 0 ${pid * 10} 0 10 0\n`);
      writeFileSync(join(root, String(pid), "cmdline"), `${comm}\0`);
      writeFileSync(join(root, String(pid), "cgroup"), "0::/\n");
    };
    const lastPid = (pid: number) => writeFileSync(join(root, "loadavg"), `0.00 0.00 0.00 1/80 ${pid}\n`);
    const self = (pid: number) => {
      rmSync(join(root, "self"), { force: true });
      symlinkSync(String(pid), join(root, "self"));
    };
    const readers: ProcReader[] = [];
    const view = (reader: ProcReader) => reader.processes().map((p) => p.comm);
    try {
      proc(70, "app");
      lastPid(100);
      self(process.pid);
      const reader = new ProcReader(root);
      readers.push(reader);
      expect(view(reader)).toEqual(["app"]);
      // A process that appears while no pid was handed out cannot have started: /proc is not listed again.
      proc(80, "impossible");
      expect(view(reader)).toEqual(["app"]);
      lastPid(101);
      expect(view(reader)).toEqual(["app", "impossible"]);

      // Where procRoot is another pid namespace's (its `self` is not this process), /proc/loadavg
      // says nothing of it: listed every time.
      self(1);
      const other = new ProcReader(root);
      readers.push(other);
      expect(view(other)).toEqual(["app", "impossible"]);
      proc(90, "elsewhere");
      expect(view(other)).toEqual(["app", "impossible", "elsewhere"]);
    } finally {
      for (const reader of readers) reader.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("reads host CPU, memory and load", () => {
    expect(parseProcStat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n")).toEqual(
      {
        busy: 150,
        total: 1000,
        cpus: 2,
      },
    );
    expect(parseMeminfo("MemTotal:        2000 kB\nMemFree:  100 kB\nMemAvailable:     1500 kB\n")).toEqual({
      totalBytes: 2_048_000,
      availableBytes: 1_536_000,
    });
    expect(parseLoadavg("1.49 2.74 2.89 2/108 17529\n")).toEqual([1.49, 2.74, 2.89]);
    expect(parseLoadavg("")).toBeUndefined();
  });
});

describe("/proc readers, on this machine", () => {
  it("find this process, and the listening and connected sockets it owns", async () => {
    const server: Server = createServer(() => {});
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const client = createConnection({ host: "127.0.0.1", port });
    await new Promise<void>((r) => client.once("connect", () => r()));
    const reader = new ProcReader("/proc");
    try {
      const processes = reader.processes();
      const self = processes.find((p) => p.pid === process.pid);
      expect(self).toMatchObject({ ppid: process.ppid, exe: process.execPath });
      expect(self?.cmdline.length).toBeGreaterThan(0);
      expect(self?.startTime).toBeGreaterThan(0);

      const sockets = reader.tcpSockets();
      const listening = sockets.find((s) => s.state === "LISTEN" && s.localPort === port);
      const outgoing = sockets.find((s) => s.state === "ESTABLISHED" && s.remotePort === port);
      expect(listening).toMatchObject({ localAddress: "127.0.0.1" });
      expect(outgoing).toMatchObject({ localAddress: "127.0.0.1", remoteAddress: "127.0.0.1", localPort: client.localPort });
      const owners = reader.socketOwners(sockets, [process.pid]);
      expect(owners.get(listening?.inode ?? -1)).toBe(process.pid);
      expect(owners.get(outgoing?.inode ?? -1)).toBe(process.pid);
    } finally {
      reader.close();
      client.destroy();
      server.close();
    }
  });

  it("lists every row of a TCP table many pages long, not only the first page a read(2) returns", async () => {
    const loopback = await openLoopback(300);
    const reader = new ProcReader("/proc");
    try {
      const sockets = reader.tcpSockets();
      const established = new Set(
        sockets.filter((s) => s.state === "ESTABLISHED" && s.remotePort === loopback.port).map((s) => s.localPort),
      );
      expect(loopback.clientPorts.filter((port) => !established.has(port))).toEqual([]);
      expect(sockets.some((s) => s.state === "LISTEN" && s.localPort === loopback.port)).toBe(true);
      // Most of these rows lie beyond the first page: a reader that stops at a short read misses them.
      const firstPage = firstPagePorts();
      expect(loopback.clientPorts.filter((port) => !firstPage.has(port)).length).toBeGreaterThan(200);
    } finally {
      reader.close();
      await loopback.close();
    }
  });

  it("keeps stat files open between reads, and closes them as processes exit and on close()", async () => {
    /** This process's descriptors open on /proc/PID/stat. */
    const statFds = (pid: number) =>
      readdirSync("/proc/self/fd").filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === `/proc/${pid}/stat`;
        } catch {
          return false;
        }
      });
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    await new Promise((r) => child.once("spawn", r));
    const pid = child.pid as number;
    const reader = new ProcReader("/proc");
    try {
      expect(reader.processes().some((p) => p.pid === pid)).toBe(true);
      const kept = statFds(pid);
      expect(kept).toHaveLength(1);
      expect(reader.processes().some((p) => p.pid === pid)).toBe(true);
      expect(statFds(pid)).toEqual(kept); // read again through the same descriptor
      expect(statFds(process.pid)).toHaveLength(1);
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      expect(reader.processes().some((p) => p.pid === pid)).toBe(false);
      expect(statFds(pid)).toEqual([]);
    } finally {
      child.kill("SIGKILL");
      reader.close();
    }
    expect(statFds(process.pid)).toEqual([]);
  });
});
