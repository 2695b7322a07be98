/**
 * The benchmark's simulated fleet: each agent a host running 40 services, reporting what the
 * passive collector reports every interval. Per service `service.cpu.cores` (four decimals),
 * `service.memory.rss_bytes` (whole pages, drifting slowly) and `service.processes`; per host
 * six `host.*` metrics: 126 samples a batch. The first batch observes every service (five of
 * them listening on `0.0.0.0:PORT`); every batch carries a few connections to services of
 * other hosts (at the addresses each host registers) or to an external API, and now and then
 * a restart (three events). Deterministic: host i draws from a generator seeded with i.
 */
import { meshV1 } from "@coral-mesh/sdk-proto/grpc";

export const SERVICES_PER_HOST = 40;
export const HOST_METRICS = [
  "host.cpu.utilization",
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
}

export class SimulatedHost {
  readonly name: string;
  private readonly random: () => number;
  private readonly services: Array<{ subject: meshV1.Subject; port: number | undefined; exe: string }> = [];
  private readonly dependencies: Dependency[] = [];
  private readonly cpu: number[] = [];
  private readonly rssPages: number[] = [];
  private readonly processes: number[] = [];
  private readonly host = { busy: 0.2, availablePages: 0, totalPages: 8_388_608, load: [0.5, 0.5, 0.5] };
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
      this.cpu.push(this.random() * 0.2);
      this.rssPages.push(2_000 + Math.floor(this.random() * 100_000));
      this.processes.push(1 + Math.floor(this.random() * 4));
    }
    this.host.availablePages = 2_000_000 + Math.floor(this.random() * 2_000_000);
    for (let d = 0; d < DEPENDENCIES && fleet > 1; d++) {
      const peer = (index + 1 + d * 97) % fleet === index ? (index + 1) % fleet : (index + 1 + d * 97) % fleet;
      this.dependencies.push({
        from: LISTENERS + ((d * 5) % (SERVICES_PER_HOST - LISTENERS)),
        address: hostAddress(peer),
        port: listenPort(serviceNumber(peer, (index + d) % LISTENERS)),
      });
    }
    this.dependencies.push({ from: SERVICES_PER_HOST - 1, address: EXTERNAL_APIS[index % EXTERNAL_APIS.length] as string, port: 443 });
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
    h.busy = clamp(h.busy + (this.random() - 0.5) * 0.05, 0.01, 0.99);
    h.availablePages = clamp(h.availablePages + Math.floor((this.random() - 0.5) * 2_000), 100_000, h.totalPages);
    h.load = h.load.map((l, k) => clamp(l + (this.random() - 0.5) * (0.2 / (k + 1)), 0, 16));
    sample("host.cpu.utilization", round(h.busy, 4), hostSubject);
    sample("host.memory.available_bytes", h.availablePages * PAGE, hostSubject);
    sample("host.memory.total_bytes", h.totalPages * PAGE, hostSubject);
    for (const [k, l] of h.load.entries()) sample(HOST_METRICS[3 + k] as string, round(l, 2), hostSubject);
    this.services.forEach((s, k) => {
      this.cpu[k] = clamp((this.cpu[k] ?? 0) + (this.random() - 0.5) * 0.02, 0, 2);
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

  private restart(now: number): meshV1.Event[] {
    const s = this.services[Math.floor(this.random() * this.services.length)] as (typeof this.services)[number];
    const old = this.pid;
    const fresh = ++this.pid;
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
      event("process.exited", process(old), { pid: String(old), service: s.subject.name }, { lastSeen: now - 10_000, exe: s.exe }),
      event("process.started", process(fresh), { pid: String(fresh), service: s.subject.name }, { exe: s.exe }),
      event("process.restarted", s.subject, { oldPid: String(old), newPid: String(fresh) }, { between: [now - 10_000, now] }),
    ];
  }
}

/** The catalogue number of host i's k-th service: 400 services in all, each on a tenth of the hosts. */
const serviceNumber = (host: number, k: number) => (host % ROLES) * SERVICES_PER_HOST + k;
const listenPort = (service: number) => 10_000 + service;
