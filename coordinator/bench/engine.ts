/**
 * The findings engine's full re-evaluation, in-process (no RPC, no store): an Engine filled with
 * what the simulated fleet (bench/hosts.ts) reports over the engine's whole memory, then
 * `evaluate` timed when every service is due. The engine keeps at most SERIES_KEEP_MS (2 h) of
 * samples per series, merged to at most SERIES_CAPACITY points as they age, and EVENTS_KEEP_MS
 * (6 h) of events per instance; older history reaches it only as the store's hourly baselines.
 * So "a day of history" is, for the engine, full buffers: 6 h of collects at 10 s, the samples
 * of the last 2 h of them kept, every restart of the 6 h kept.
 */
import { detectors } from "../src/analysis/detectors/index.js";
import { Engine, FULL_PASS_MS } from "../src/analysis/engine.js";
import { type Detector, EVENTS_KEEP_MS, SERIES_KEEP_MS } from "../src/analysis/model.js";
import type { InputEvent, InputSample } from "../src/analysis/state.js";
import { PLUGINS, SimulatedHost } from "./hosts.js";

const INTERVAL_MS = 10_000;
/** Noon of a Monday, UTC: the engine is pure, so the clock is the bench's. */
const NOW = Date.UTC(2026, 0, 5, 12);
/** As ingest names them (src/rpc/ingest.ts). */
const SUBJECT_KINDS: Record<number, string> = { 1: "agent", 2: "service", 3: "process", 4: "host" };

export interface EngineBenchOptions {
  agents: number;
  /** Evaluations timed, every service due at each. */
  evaluations?: number;
  out: (line: string) => void;
  signal?: AbortSignal;
}

export interface EngineBenchResult {
  fillMs: number;
  simulatedMs: number;
  evaluateMs: number[];
  /** The same evaluations' CPU time (this process's, so GC threads' too): a busy machine stretches wall time, not this. */
  evaluateCpuMs: number[];
  /** CPU ms of each simulated second at steady state: a tenth of the fleet's batches applied, then a pass. */
  steadyCpuMs: number[];
  /** Full passes a minute into the samples, CPU ms. */
  firstMinuteCpuMs: number[];
  opened: number;
  heapMb: number;
  services: number;
}

/** A simulated batch as the bus hands it to the engine. */
function inputs(
  agent: string,
  batch: ReturnType<SimulatedHost["collect"]>,
  nextId: () => number,
): { events: InputEvent[]; samples: InputSample[] } {
  return {
    events: batch.events.map((e) => ({
      id: nextId(),
      agent,
      kind: e.kind,
      time: e.timeUnixMs,
      subject: { kind: SUBJECT_KINDS[e.subject?.kind ?? 0] ?? "unknown", id: e.subject?.id ?? "", name: e.subject?.name || null },
      attributes: e.attributes,
      source: e.source,
    })),
    samples: batch.metrics.map((m) => ({
      subjectKind: SUBJECT_KINDS[m.subject?.kind ?? 0] ?? "unknown",
      subjectId: m.subject?.id ?? "",
      name: m.name,
      labels: "{}",
      time: m.timeUnixMs,
      value: m.value,
    })),
  };
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? Number.NaN;

export async function engineBench(options: EngineBenchOptions): Promise<EngineBenchResult> {
  const { agents, out } = options;
  const evaluations = options.evaluations ?? 5;
  // Each detector timed (the engine takes its detectors as an option), to show where a pass goes.
  const spent = new Map<string, number>();
  const timed = detectors.map((d): Detector => {
    const detect = (...args: Parameters<typeof d.detect>) => {
      const t0 = performance.now();
      try {
        return (d.detect as (...a: typeof args) => ReturnType<typeof d.detect>)(...args);
      } finally {
        spent.set(d.kind, (spent.get(d.kind) ?? 0) + performance.now() - t0);
      }
    };
    return { ...d, detect } as Detector;
  });
  const engine = new Engine({ detectors: timed });
  const { state } = engine;
  const hosts = Array.from({ length: agents }, (_, i) => new SimulatedHost(i, agents));
  const start = NOW - EVENTS_KEEP_MS;
  const plugins = PLUGINS.map((p) => ({ name: p.name, state: "running" }));
  for (const host of hosts) state.applyAgent({ name: host.name, health: "healthy", lastHeartbeat: NOW, plugins, clockOffsetMs: 0 }, start);
  const calls = hosts.flatMap((h) => h.calls());

  const heapBefore = process.memoryUsage().heapUsed;
  let eventId = 0;
  let events = 0;
  let samples = 0;
  let fillMs = 0;
  const firstMinuteCpuMs: number[] = [];
  const collects = EVENTS_KEEP_MS / INTERVAL_MS;
  out(
    `  filling: ${agents} hosts × ${collects} collects (6 h at ${INTERVAL_MS / 1000} s; samples of the last ${SERIES_KEEP_MS / 3_600_000} h kept, events of all 6 h)`,
  );
  for (let step = 1; step <= collects; step++) {
    options.signal?.throwIfAborted();
    const time = start + step * INTERVAL_MS;
    const keepSamples = time > NOW - SERIES_KEEP_MS;
    for (const host of hosts) {
      const batch = host.collect(time);
      const { events: input, samples: all } = inputs(host.name, batch, () => ++eventId);
      const metrics: InputSample[] = keepSamples ? all : [];
      const t0 = performance.now();
      state.applyBatch(host.name, time, input, metrics);
      fillMs += performance.now() - t0;
      events += input.length;
      samples += metrics.length;
    }
    // A minute into the kept samples (series of six points, as in the RPC phase's window): a few passes timed there too.
    if (time === NOW - SERIES_KEEP_MS + 60_000) {
      for (let k = 0; k < 3; k++) {
        const cpu0 = process.cpuUsage();
        engine.evaluate(time + k * FULL_PASS_MS);
        const cpu = process.cpuUsage(cpu0);
        firstMinuteCpuMs.push((cpu.user + cpu.system) / 1000);
      }
    }
    // The graph, as the worker reads it every 10 s.
    if (step % 60 === 0) {
      const t0 = performance.now();
      state.applyDependencies(
        calls.map((c) => ({ ...c, lastSeen: time })),
        time,
      );
      fillMs += performance.now() - t0;
    }
    // A turn of the event loop now and then, so that Ctrl-C is heard.
    if (step % 120 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6;

  let instances = 0;
  let series = 0;
  let points = 0;
  let kept = 0;
  for (const service of state.services.values())
    for (const instance of service.instances.values()) {
      instances++;
      kept += instance.events.length;
      for (const s of instance.metrics.values()) {
        series++;
        points += s.size;
      }
    }
  for (const agent of state.agents.values())
    for (const s of agent.host.values()) {
      series++;
      points += s.size;
    }
  out(
    `  held: ${state.services.size} services, ${instances} instances, ${series} series (${fmt(points / series, 0)} points each on average), ${kept} events; heap about ${fmt(heapMb, 0)} MB`,
  );
  out(
    `  filling took ${fmt(fillMs / 1000, 1)} s of state updates for ${samples} samples and ${events} events (${fmt((fillMs * 1e6) / Math.max(1, samples), 0)} ns a sample)`,
  );

  // The first evaluation has every instance due (all moved): a full re-evaluation. The engine
  // then looks only at what moves, so the later ones are the steady state: each simulated second
  // a tenth of the fleet reports (as collects spread over the interval), and the CPU of applying
  // those batches and evaluating is what the engine costs a second at this load.
  spent.clear();
  const evaluateMs: number[] = [];
  const evaluateCpuMs: number[] = [];
  const steadyCpuMs: number[] = [];
  let opened = 0;
  const kinds = new Map<string, number>();
  const count = (changes: ReturnType<Engine["evaluate"]>) => {
    for (const c of changes) {
      if (c.change !== "opened") continue;
      opened++;
      const kind = `${c.finding.kind} (${c.finding.severity})`;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
  };
  {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    count(engine.evaluate(NOW));
    const cpu = process.cpuUsage(cpu0);
    evaluateMs.push(performance.now() - t0);
    evaluateCpuMs.push((cpu.user + cpu.system) / 1000);
  }
  const fullSpent = new Map(spent);
  const steadySeconds = Math.max(evaluations, 1) * 10;
  for (let second = 1; second <= steadySeconds; second++) {
    options.signal?.throwIfAborted();
    const time = NOW + second * 1_000;
    // The second's batches, made before the clock starts: the simulation is not the engine's cost.
    const batches = [];
    for (let i = second % 10; i < hosts.length; i += 10) {
      const host = hosts[i] as SimulatedHost;
      const batch = host.collect(time);
      batches.push({ agent: host.name, ...inputs(host.name, batch, () => ++eventId) });
    }
    const cpu0 = process.cpuUsage();
    for (const b of batches) state.applyBatch(b.agent, time, b.events, b.samples);
    count(engine.evaluate(time));
    const cpu = process.cpuUsage(cpu0);
    steadyCpuMs.push((cpu.user + cpu.system) / 1000);
  }
  out(
    `  a full pass a minute into the samples (series of six points): CPU median ${fmt(median(firstMinuteCpuMs), 0)} ms of ${firstMinuteCpuMs.length}`,
  );
  out(`  full re-evaluation (every instance due): ${fmt(evaluateMs[0] ?? 0, 0)} ms, CPU ${fmt(evaluateCpuMs[0] ?? 0, 0)} ms`);
  out(
    `  steady state (a tenth of the fleet reports each second, then a pass): CPU median ${fmt(median(steadyCpuMs), 0)} ms a second = ${fmt(median(steadyCpuMs) / 10, 1)} % of one core (p90 ${fmt([...steadyCpuMs].sort((a, b) => a - b)[Math.floor(steadyCpuMs.length * 0.9)] ?? 0, 0)} ms), over ${steadyCpuMs.length} s`,
  );
  const detected = [...fullSpent.values()].reduce((a, b) => a + b, 0);
  const total = evaluateMs.reduce((a, b) => a + b, 0);
  out(
    `  where a full pass goes: ${[...fullSpent]
      .sort((a, b) => b[1] - a[1])
      .map(([kind, ms]) => `${kind} ${fmt((ms / total) * 100, 0)} %`)
      .join(", ")}; correlation and the rest ${fmt(((total - detected) / total) * 100, 0)} %`,
  );
  out(`  findings opened over this healthy fleet: ${opened}${opened ? ` (${[...kinds].map(([k, n]) => `${n} ${k}`).join(", ")})` : ""}`);
  return {
    fillMs,
    simulatedMs: SERIES_KEEP_MS,
    evaluateMs,
    evaluateCpuMs,
    firstMinuteCpuMs,
    steadyCpuMs,
    opened,
    heapMb,
    services: state.services.size,
  };
}
