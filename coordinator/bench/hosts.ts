/**
 * The benchmark's simulated fleet: each agent a host running 40 services, reporting what the
 * passive collector reports every interval. Per service `service.cpu.cores` (four decimals,
 * wandering about a level of its own), `service.memory.rss_bytes` (whole pages, drifting
 * slowly) and `service.processes`; per host seven `host.*` metrics: 127 samples a batch. The
 * first batch observes every service (five of them listening on `0.0.0.0:PORT`); every batch
 * carries a few connections to services of other hosts (at the addresses each host registers)
 * or to an external API, and now and then a restart of one process of a service (three events,
 * with the attributes the passive collector gives them). A healthy fleet: nothing in it should
 * open a finding. Deterministic: host i draws from a generator seeded with i.
 */
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";

export const SERVICES_PER_HOST = 40;
export const HOST_METRICS = [
  "host.cpu.utilization",
  "host.cpu.cores",
  "host.memory.available_bytes",
  "host.memory.total_bytes",
  "host.load1",
  "host.load5",
  "host.load15",
];
export const SAMPLES_PER_BATCH = SERVICES_PER_HOST * 3 + HOST_METRICS.length;
/** Hosts of one role run the same 40 services, so a service has instances on a tenth of the fleet. */
const ROLES = 10;
/** The first services of a host listen; the others only connect. */
const LISTENERS = 5;
/** Each host's services depend on this many services of other hosts, and on one external API. */
const DEPENDENCIES = 6;
const CONNECTIONS_PER_BATCH = 4;
/** Share of batches that carry a restart (process.exited, process.started, process.restarted). */
const RESTART_SHARE = 0.03;
const PAGE = 4096;
const EXTERNAL_APIS = ["203.0.113.10", "203.0.113.20", "203.0.113.30"];

/** The address an agent calls the coordinator from (its mesh address, on loopback here). */
export const meshAddress = (i: number) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
/**
 * The host's own address, which its Register lists: in 198.18.0.0/15, RFC 2544's range for
 * benchmarks (TEST-NET-2 and -3 hold 254 hosts each; a fleet of 1,000 needs its own).
 */
export const hostAddress = (i: number) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;

export const PLUGINS: meshV1.PluginState[] = [
  { name: "passive", version: "0.1.0", status: 2, lastError: "", sinceUnixMs: 0 },
  { name: "sdk", version: "0.1.0", status: 2, lastError: "", sinceUnixMs: 0 },
];

function generator(seed: number): () => number {
  let a = seed + 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;
const clamp = (n: number, min: number, max: number) => Math.min(max, Math.max(min, n));

interface Dependency {
  from: number;
  address: string;
  port: number;
  /** The service listening there, when it is one of the fleet's. */
  to?: string;
}

export class SimulatedHost {
  readonly name: string;
  private readonly random: () => number;
  private readonly services: Array<{ subject: meshV1.Subject; port: number | undefined; exe: string }> = [];
  private readonly dependencies: Dependency[] = [];
  private readonly cpu: number[] = [];
  /** Each service's usual CPU, which its samples wander about (a random walk would drift into a spike). */
  private readonly cpuLevel: number[] = [];
  private readonly rssPages: number[] = [];
  private readonly processes: number[] = [];
  private readonly host = { cores: 8, busy: 0.2, busyLevel: 0.2, availablePages: 0, totalPages: 8_388_608, load: [0.5, 0.5, 0.5] };
  private pid = 1000;
  private sequence = 0;

  constructor(
    readonly index: number,
    fleet: number,
  ) {
    this.name = `agent-${index}`;
    this.random = generator(index);
    for (let k = 0; k < SERVICES_PER_HOST; k++) {
      const n = serviceNumber(index, k);
      this.services.push({
        subject: { kind: meshV1.SubjectKind.SUBJECT_KIND_SERVICE, id: `exe:/opt/svc-${n}/bin/svc-${n}`, name: `svc-${n}` },
        port: k < LISTENERS ? listenPort(n) : undefined,
        exe: `/opt/svc-${n}/bin/svc-${n}`,
      });
      this.cpuLevel.push(this.random() * 0.2);
      this.cpu.push(this.cpuLevel[k] as number);
      this.rssPages.push(2_000 + Math.floor(this.random() * 100_000));
      this.processes.push(1 + Math.floor(this.random() * 4));
    }
    this.host.availablePages = 2_000_000 + Math.floor(this.random() * 2_000_000);
    this.host.busyLevel = 0.1 + this.random() * 0.4;
    this.host.busy = this.host.busyLevel;
    for (let d = 0; d < DEPENDENCIES && fleet > 1; d++) {
      const peer = (index + 1 + d * 97) % fleet === index ? (index + 1) % fleet : (index + 1 + d * 97) % fleet;
      const to = serviceNumber(peer, (index + d) % LISTENERS);
      this.dependencies.push({
        from: LISTENERS + ((d * 5) % (SERVICES_PER_HOST - LISTENERS)),
        address: hostAddress(peer),
        port: listenPort(to),
        to: `svc-${to}`,
      });
    }
    this.dependencies.push({ from: SERVICES_PER_HOST - 1, address: EXTERNAL_APIS[index % EXTERNAL_APIS.length] as string, port: 443 });
  }

  /** What the resolved graph makes of its connections: its services' calls to other hosts' services, by name. */
  calls(): Array<{ from: string; to: string }> {
    return this.dependencies.flatMap((d) =>
      d.to ? [{ from: (this.services[d.from] as (typeof this.services)[number]).subject.name, to: d.to }] : [],
    );
  }

  register(sentAtUnixMs: number): meshV1.RegisterRequest {
    return {
      agentName: this.name,
      agentVersion: "0.1.0",
      hostname: `host-${this.index}`,
      os: "linux",
      arch: "x64",
      plugins: PLUGINS,
      runId: `run-${this.index}`,
      sentAtUnixMs,
      addresses: [hostAddress(this.index)],
    };
  }

  /** The next collect's batch, with every sample at `now` (one collect reads everything at once). */
  collect(now: number): meshV1.Batch {
    const sequence = ++this.sequence;
    const events: meshV1.Event[] = [];
    if (sequence === 1) {
      for (const s of this.services) {
        events.push({
          kind: "service.observed",
          timeUnixMs: now,
          subject: s.subject,
          attributes: { source: "passive", exe: s.exe, ...(s.port ? { listening: `0.0.0.0:${s.port}` } : {}) },
          evidenceJson: "",
          source: "passive",
        });
      }
    } else if (this.random() < RESTART_SHARE) events.push(...this.restart(now));

    const metrics: meshV1.MetricSample[] = [];
    const sample = (name: string, value: number, subject: meshV1.Subject) => {
      metrics.push({ name, value, timeUnixMs: now, subject, labels: {}, source: "passive" });
    };
    const hostSubject = { kind: meshV1.SubjectKind.SUBJECT_KIND_HOST, id: "host", name: "" };
    const h = this.host;
    h.busy = clamp(h.busy + (h.busyLevel - h.busy) * 0.1 + (this.random() - 0.5) * 0.05, 0.01, 0.99);
    h.availablePages = clamp(h.availablePages + Math.floor((this.random() - 0.5) * 2_000), 100_000, h.totalPages);
    h.load = h.load.map((l, k) => clamp(l + (this.random() - 0.5) * (0.2 / (k + 1)), 0, 16));
    sample("host.cpu.utilization", round(h.busy, 4), hostSubject);
    sample("host.cpu.cores", h.cores, hostSubject);
    sample("host.memory.available_bytes", h.availablePages * PAGE, hostSubject);
    sample("host.memory.total_bytes", h.totalPages * PAGE, hostSubject);
    for (const [k, l] of h.load.entries()) sample(HOST_METRICS[4 + k] as string, round(l, 2), hostSubject);
    this.services.forEach((s, k) => {
      const cpu = this.cpu[k] ?? 0;
      this.cpu[k] = clamp(cpu + ((this.cpuLevel[k] ?? 0) - cpu) * 0.1 + (this.random() - 0.5) * 0.02, 0, 2);
      this.rssPages[k] = Math.max(100, (this.rssPages[k] ?? 0) + Math.floor((this.random() - 0.5) * 16));
      if (this.random() < 0.01) this.processes[k] = clamp((this.processes[k] ?? 1) + (this.random() < 0.5 ? -1 : 1), 1, 8);
      sample("service.cpu.cores", round(this.cpu[k] ?? 0, 4), s.subject);
      sample("service.memory.rss_bytes", (this.rssPages[k] ?? 0) * PAGE, s.subject);
      sample("service.processes", this.processes[k] ?? 1, s.subject);
    });

    const connections: meshV1.Connection[] = [];
    for (let c = 0; c < CONNECTIONS_PER_BATCH && this.dependencies.length > 0; c++) {
      const d = this.dependencies[(sequence * CONNECTIONS_PER_BATCH + c) % this.dependencies.length] as Dependency;
      const from = this.services[d.from] as (typeof this.services)[number];
      connections.push({
        protocol: "tcp",
        localAddress: hostAddress(this.index),
        localPort: 32_768 + ((sequence * 7 + c) % 28_000),
        remoteAddress: d.address,
        remotePort: d.port,
        pid: 100 + d.from,
        processName: from.subject.name,
        subject: from.subject,
        observedAtUnixMs: now,
        source: "passive",
      });
    }
    return { sequence, createdAtUnixMs: now, droppedBefore: 0, events, metrics, connections };
  }

  /** One process of a service replaced (as the passive collector sees it): its only one, or one of a pool. */
  private restart(now: number): meshV1.Event[] {
    const k = Math.floor(this.random() * this.services.length);
    const s = this.services[k] as (typeof this.services)[number];
    const running = this.processes[k] ?? 1;
    const old = this.pid;
    const fresh = ++this.pid;
    const key = s.subject.id;
    const process = (pid: number) => ({ kind: meshV1.SubjectKind.SUBJECT_KIND_PROCESS, id: `pid:${pid}:${now}`, name: s.subject.name });
    const event = (kind: string, subject: meshV1.Subject, attributes: Record<string, string>, evidence: unknown): meshV1.Event => ({
      kind,
      timeUnixMs: now,
      subject,
      attributes,
      evidenceJson: JSON.stringify(evidence),
      source: "passive",
    });
    return [
      event(
        "process.exited",
        process(old),
        { pid: String(old), service: s.subject.name, serviceKey: key, remaining: String(running) },
        { lastSeen: now - 10_000, exe: s.exe },
      ),
      event("process.started", process(fresh), { pid: String(fresh), service: s.subject.name, serviceKey: key }, { exe: s.exe }),
      event(
        "process.restarted",
        s.subject,
        { oldPid: String(old), newPid: String(fresh), survivors: String(running - 1) },
        { between: [now - 10_000, now] },
      ),
    ];
  }
}

/** The catalogue number of host i's k-th service: 400 services in all, each on a tenth of the hosts. */
const serviceNumber = (host: number, k: number) => (host % ROLES) * SERVICES_PER_HOST + k;
const listenPort = (service: number) => 10_000 + service;
