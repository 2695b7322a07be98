/**
 * The engine's state: what the store learned, kept in memory in the shape the detectors read
 * (model.ts), updated incrementally from the ingest bus. Times are put on the coordinator's
 * clock as they come in (the agent's time minus its estimated offset).
 */
import type { StoredEvent, StoredSample } from "../store/bus.js";
import { splitSocket } from "../store/resolve.js";
import {
  type AgentState,
  type AnalysisState,
  type Baseline,
  type CheckState,
  type Deploy,
  EVENTS_KEEP_MS,
  type InstanceState,
  type ServiceState,
  type SignalEvent,
} from "./model.js";
import { BoundedSeries } from "./series.js";

/** Events kept per instance or agent at most (within EVENTS_KEEP_MS). */
const EVENTS_CAPACITY = 256;
/** A dependency not seen for this long is forgotten. */
export const DEPENDENCY_KEEP_MS = 3_600_000;
export const DEFAULT_COLLECT_INTERVAL_MS = 10_000;

/** An event as it reaches the analysis: the bus's (the store's), on the agent's clock. */
export type InputEvent = StoredEvent;

/** A metric sample as it reaches the analysis (the bus's); `labels` is canonical JSON ("{}" for none). */
export type InputSample = StoredSample;

/** The coordinator's record of an agent (the agents table). */
export interface InputAgent {
  name: string;
  health: string | null;
  lastHeartbeat: number | null;
  plugins: ReadonlyArray<{ name: string; state: string; error?: string }>;
  clockOffsetMs: number | null;
}

/** A service instance as the inventory has it (the services table). */
export interface InputInstance {
  agent: string;
  key: string;
  name: string;
  version: string | null;
  source: string;
  health: string | null;
  listening: readonly string[];
  executable: string | null;
  firstSeen: number;
  lastSeen: number;
}

/** A resolved dependency: a service on an agent calls a service, last seen then. */
export interface InputDependency {
  from: string;
  to: string;
  lastSeen: number;
}

/** `script:node /srv/api/server.js` → `/srv/api/server.js`. */
const scriptOf = (key: string): string | undefined =>
  key.startsWith("script:") && key.includes(" ") ? key.slice(key.indexOf(" ") + 1) : undefined;

/** The metrics the detectors read, by name: the state keeps no others. */
export const ANALYSED_METRICS: ReadonlySet<string> = new Set([
  "service.cpu.cores",
  "service.memory.rss_bytes",
  "service.memory.limit_bytes",
  "service.check.passing",
  "host.cpu.utilization",
  "host.cpu.cores",
  "host.memory.available_bytes",
  "host.memory.total_bytes",
  "host.disk.used_bytes",
  "host.disk.available_bytes",
]);

export const metricKey = (name: string, labels: string): string => (labels === "{}" || labels === "" ? name : `${name}${labels}`);

class Instance implements InstanceState {
  source: "passive" | "sdk" = "passive";
  version: string | null = null;
  executable: string | null = null;
  health: string | null = null;
  healthSince: number | null = null;
  listening: string[] = [];
  firstSeen: number;
  lastSeen: number;
  readonly metrics = new Map<string, BoundedSeries>();
  readonly checks = new Map<string, CheckState & { changes: number[] }>();
  events: SignalEvent[] = [];
  /** `agent\0key`: how the engine names it. */
  readonly id: string;

  constructor(
    readonly agent: string,
    readonly key: string,
    public name: string,
    at: number,
  ) {
    this.id = `${agent}\u0000${key}`;
    this.firstSeen = at;
    this.lastSeen = at;
  }
}

class Service implements ServiceState {
  readonly instances = new Map<string, Instance>();
  deploys: Deploy[] = [];
  readonly versions = new Map<string, { firstSeen: number; lastSeen: number }>();
  constructor(readonly name: string) {}
}

class Agent implements AgentState {
  health: string | null = null;
  healthSince: number | null = null;
  lastHeartbeat: number | null = null;
  offsetMs = 0;
  readonly plugins = new Map<string, { state: string; since: number; error?: string }>();
  readonly host = new Map<string, BoundedSeries>();
  events: SignalEvent[] = [];
  /** Receive times of its latest batches, for its collect interval. */
  readonly arrivals: number[] = [];
  constructor(readonly name: string) {}
}

const trimEvents = (events: SignalEvent[], now: number): SignalEvent[] => {
  let drop = 0;
  while (drop < events.length && ((events[drop] as SignalEvent).time < now - EVENTS_KEEP_MS || events.length - drop > EVENTS_CAPACITY))
    drop++;
  return drop ? events.slice(drop) : events;
};

export type BaselineSource = (agent: string, key: string, metric: string, at: number) => Baseline | undefined;

export class State implements AnalysisState {
  readonly services = new Map<string, Service>();
  readonly agents = new Map<string, Agent>();
  readonly dependencies = new Map<string, Set<string>>();
  readonly dependents = new Map<string, Set<string>>();
  private readonly instances = new Map<string, Instance>();
  /** The same instances by agent and key: a sample finds its own without building a string. */
  private readonly byAgent = new Map<string, Map<string, Instance>>();
  private readonly dependencySeen = new Map<string, number>();
  /** Exit statuses the ebpf collector saw, by agent and pid, for the passive exit that follows. */
  private readonly exitCodes = new Map<string, Map<string, number>>();
  /** Services whose signals moved since `takeDirty()` last ran. */
  private dirty = new Set<string>();
  private dirtyAgents = new Set<string>();
  /** Instances (`agent\0key`) whose signals moved since `takeDirty()` last ran. */
  private dirtyInstances = new Set<string>();

  constructor(private readonly baselines: BaselineSource = () => undefined) {}

  baseline(agent: string, key: string, metric: string, at: number): Baseline | undefined {
    return this.baselines(agent, key, metric, at);
  }

  collectIntervalMs(agent: string): number {
    const arrivals = this.agents.get(agent)?.arrivals ?? [];
    if (arrivals.length < 3) return DEFAULT_COLLECT_INTERVAL_MS;
    const gaps: number[] = [];
    for (let i = 1; i < arrivals.length; i++) gaps.push((arrivals[i] as number) - (arrivals[i - 1] as number));
    gaps.sort((a, b) => a - b);
    // Batches of one collect can arrive together: the median spacing, never below a second.
    return Math.max(1_000, gaps[gaps.length >> 1] as number);
  }

  /** The services and agents touched since the last call. */
  takeDirty(): { services: Set<string>; agents: Set<string>; instances: Set<string> } {
    const taken = { services: this.dirty, agents: this.dirtyAgents, instances: this.dirtyInstances };
    this.dirtyInstances = new Set();
    this.dirty = new Set();
    this.dirtyAgents = new Set();
    return taken;
  }

  agent(name: string): Agent {
    let agent = this.agents.get(name);
    if (!agent) {
      agent = new Agent(name);
      this.agents.set(name, agent);
    }
    return agent;
  }

  private service(name: string): Service {
    let service = this.services.get(name);
    if (!service) {
      service = new Service(name);
      this.services.set(name, service);
    }
    return service;
  }

  /**
   * The instance `key` on `agent`, made (named `name`) if new, moved if its name changed: the
   * SDK's name wins over a passive one, never the other way.
   */
  private instance(agent: string, key: string, name: string | null, at: number, fromSdk = false): Instance {
    let instance = this.byAgent.get(agent)?.get(key);
    if (!instance) {
      instance = new Instance(agent, key, name || key, at);
      this.instances.set(instance.id, instance);
      let onAgent = this.byAgent.get(agent);
      if (!onAgent) {
        onAgent = new Map();
        this.byAgent.set(agent, onAgent);
      }
      onAgent.set(key, instance);
      this.service(instance.name).instances.set(instance.id, instance);
    } else if (name && name !== instance.name && (fromSdk || instance.source !== "sdk")) {
      this.leaveService(instance);
      instance.name = name;
      this.service(name).instances.set(instance.id, instance);
    }
    this.dirty.add(instance.name);
    this.dirtyInstances.add(instance.id);
    return instance;
  }

  private leaveService(instance: Instance): void {
    const service = this.services.get(instance.name);
    service?.instances.delete(instance.id);
    if (service && service.instances.size === 0) this.services.delete(service.name);
  }

  private forget(instance: Instance): void {
    this.instances.delete(instance.id);
    const onAgent = this.byAgent.get(instance.agent);
    onAgent?.delete(instance.key);
    if (onAgent?.size === 0) this.byAgent.delete(instance.agent);
    this.leaveService(instance);
  }

  instancesOn(agent: string): InstanceState[] {
    return [...(this.byAgent.get(agent)?.values() ?? [])];
  }

  instanceById(id: string): InstanceState | undefined {
    return this.instances.get(id);
  }

  /** The instance a process event is about: by the service key it carries, else by name on its agent. */
  private instanceOfProcess(agent: string, attributes: Record<string, string>, name: string | null): Instance | undefined {
    if (attributes.serviceKey) return this.byAgent.get(agent)?.get(attributes.serviceKey);
    const service = this.services.get(attributes.service || name || "");
    if (!service) return undefined;
    for (const instance of service.instances.values()) if (instance.agent === agent) return instance;
    return undefined;
  }

  /** The inventory's rows (at start, from the store). */
  applyInstance(row: InputInstance): void {
    const instance = this.instance(row.agent, row.key, row.name, row.firstSeen, row.source === "sdk");
    instance.source = row.source === "sdk" ? "sdk" : "passive";
    instance.version = row.version;
    instance.executable = row.executable;
    instance.health = row.health;
    instance.listening = [...row.listening];
    instance.firstSeen = Math.min(instance.firstSeen, row.firstSeen);
    instance.lastSeen = Math.max(instance.lastSeen, row.lastSeen);
    this.noteVersion(instance, row.lastSeen);
  }

  applyAgent(row: InputAgent, now: number): void {
    const agent = this.agent(row.name);
    if (row.health !== agent.health) {
      agent.health = row.health;
      agent.healthSince = now;
    }
    agent.lastHeartbeat = row.lastHeartbeat;
    agent.offsetMs = row.clockOffsetMs ?? 0;
    const seen = new Set<string>();
    for (const plugin of row.plugins) {
      seen.add(plugin.name);
      const before = agent.plugins.get(plugin.name);
      if (!before || before.state !== plugin.state || before.error !== plugin.error)
        agent.plugins.set(plugin.name, { state: plugin.state, since: now, ...(plugin.error ? { error: plugin.error } : {}) });
    }
    for (const name of [...agent.plugins.keys()]) if (!seen.has(name)) agent.plugins.delete(name);
    this.dirtyAgents.add(row.name);
  }

  /** An agent is gone from the mesh (removed): everything about it goes. */
  forgetAgent(name: string): void {
    this.agents.delete(name);
    for (const instance of [...(this.byAgent.get(name)?.values() ?? [])]) this.forget(instance);
  }

  /** A batch stored for `agent`: its events and samples, and when it arrived. */
  applyBatch(agentName: string, receivedAt: number, events: readonly InputEvent[], samples: readonly InputSample[]): void {
    const agent = this.agent(agentName);
    agent.arrivals.push(receivedAt);
    if (agent.arrivals.length > 12) agent.arrivals.shift();
    for (const event of events) this.applyEvent(event);
    const offset = agent.offsetMs;
    for (const sample of samples) this.applySample(agentName, sample, sample.time - offset);
    this.dirtyAgents.add(agentName);
  }

  applySample(agentName: string, sample: InputSample, time: number): void {
    // Only what a detector reads is kept; an instance's other samples still say it reports.
    if (!ANALYSED_METRICS.has(sample.name)) {
      if (sample.subjectKind === "service") {
        const instance = this.byAgent.get(agentName)?.get(sample.subjectId);
        if (instance && time > instance.lastSeen) instance.lastSeen = time;
      }
      return;
    }
    const key = metricKey(sample.name, sample.labels);
    if (sample.subjectKind === "service") {
      const instance = this.byAgent.get(agentName)?.get(sample.subjectId) ?? this.instance(agentName, sample.subjectId, null, time);
      instance.lastSeen = Math.max(instance.lastSeen, time);
      let series = instance.metrics.get(key);
      if (!series) {
        series = new BoundedSeries();
        instance.metrics.set(key, series);
      }
      series.add(time, sample.value);
      this.dirty.add(instance.name);
      this.dirtyInstances.add(instance.id);
      // A check's state before any change was reported is its first sample.
      if (sample.name === "service.check.passing") {
        const name = JSON.parse(sample.labels).check as string | undefined;
        if (name && !instance.checks.has(name)) instance.checks.set(name, { name, passing: sample.value === 1, since: time, changes: [] });
      }
    } else if (sample.subjectKind === "host") {
      const agent = this.agent(agentName);
      let series = agent.host.get(key);
      if (!series) {
        series = new BoundedSeries();
        agent.host.set(key, series);
      }
      series.add(time, sample.value);
    }
  }

  applyEvent(input: InputEvent): void {
    const agentName = input.agent;
    const offset = agentName ? (this.agents.get(agentName)?.offsetMs ?? 0) : 0;
    const event: SignalEvent = {
      id: input.id,
      kind: input.kind,
      time: input.time - offset,
      agent: agentName,
      subject: input.subject.id,
      attributes: input.attributes,
      source: input.source,
    };
    const a = input.attributes;
    if (!agentName || input.subject.kind === "agent") {
      const name = agentName ?? input.subject.id;
      const agent = this.agent(name);
      agent.events = trimEvents([...agent.events, event], event.time);
      this.dirtyAgents.add(name);
      return;
    }
    // The ebpf collector sees the exit status the moment a process exits; the passive collector
    // reports the instance gone at its next collect. The status joins that report by pid.
    if (input.kind === "process.exit" && a.pid && a.exitCode !== undefined) {
      const codes = this.exitCodes.get(agentName) ?? new Map<string, number>();
      codes.set(a.pid, Number(a.exitCode));
      if (codes.size > 1_024) codes.delete(codes.keys().next().value as string);
      this.exitCodes.set(agentName, codes);
      return;
    }
    if (input.kind === "process.exited" && a.pid) {
      const code = this.exitCodes.get(agentName)?.get(a.pid);
      if (code !== undefined) event.attributes = { ...a, code: String(code) };
    }
    let instance: Instance | undefined;
    if (input.subject.kind === "service") {
      instance = this.instance(agentName, input.subject.id, input.subject.name, event.time, a.source === "sdk" || input.source === "sdk");
    } else if (input.subject.kind === "process") instance = this.instanceOfProcess(agentName, a, input.subject.name);
    if (!instance) return;
    instance.lastSeen = Math.max(instance.lastSeen, event.time);
    instance.events = trimEvents([...instance.events, event], event.time);
    this.dirty.add(instance.name);
    this.dirtyInstances.add(instance.id);
    switch (input.kind) {
      case "service.observed": {
        if (a.source === "sdk") instance.source = "sdk";
        if (a.version) instance.version = a.version;
        if (a.exe) instance.executable = a.exe;
        if (a.listening !== undefined) instance.listening = a.listening.split(",").filter(Boolean);
        this.noteVersion(instance, event.time);
        break;
      }
      case "service.health_changed":
        if (a.to) {
          instance.health = a.to;
          instance.healthSince = event.time;
        }
        break;
      case "port.opened":
        if (a.address && !instance.listening.includes(a.address)) instance.listening = [...instance.listening, a.address].sort();
        break;
      case "port.closed":
        if (a.address) instance.listening = instance.listening.filter((s) => s !== a.address);
        break;
      case "service.check_changed": {
        if (!a.check) break;
        const check = instance.checks.get(a.check) ?? { name: a.check, passing: true, since: event.time, changes: [] };
        check.passing = a.to === "pass";
        check.since = event.time;
        check.changes = [...check.changes.filter((t) => t >= event.time - EVENTS_KEEP_MS), event.time];
        instance.checks.set(a.check, check);
        break;
      }
      case "service.deployed": {
        const service = this.service(instance.name);
        const sdk = a.source === "sdk" || input.source === "sdk";
        service.deploys = [
          ...service.deploys.filter((d) => d.time >= event.time - EVENTS_KEEP_MS),
          {
            eventId: event.id,
            time: event.time,
            agent: agentName,
            key: instance.key,
            // Passively, what was replaced is the file it runs: an interpreter's script, else its executable.
            from: sdk ? (a.from ?? null) : (scriptOf(instance.key) ?? instance.executable),
            to: sdk ? (a.to ?? a.version ?? null) : (scriptOf(instance.key) ?? a.exe ?? instance.executable),
            source: sdk ? "sdk" : (input.source ?? "passive"),
          },
        ];
        if (sdk && a.to) instance.version = a.to;
        if (!sdk && a.exe) instance.executable = a.exe;
        this.noteVersion(instance, event.time);
        break;
      }
    }
  }

  private noteVersion(instance: Instance, at: number): void {
    if (!instance.version) return;
    const versions = this.service(instance.name).versions;
    const seen = versions.get(instance.version);
    if (seen) seen.lastSeen = Math.max(seen.lastSeen, at);
    else versions.set(instance.version, { firstSeen: at, lastSeen: at });
  }

  /**
   * The resolved graph as the store has it now. A dependency stays known for an hour after
   * its edge was last seen, even when its far end stops listening (which is when its edges
   * stop resolving to it, and when it matters most).
   */
  applyDependencies(dependencies: readonly InputDependency[], now: number): void {
    for (const d of dependencies) {
      if (d.from === d.to) continue;
      const id = `${d.from}\u0000${d.to}`;
      this.dependencySeen.set(id, Math.max(this.dependencySeen.get(id) ?? 0, d.lastSeen));
    }
    this.dependencies.clear();
    this.dependents.clear();
    for (const [id, seen] of this.dependencySeen) {
      if (seen < now - DEPENDENCY_KEEP_MS) {
        this.dependencySeen.delete(id);
        continue;
      }
      const [from, to] = id.split("\u0000") as [string, string];
      const calls = this.dependencies.get(from) ?? new Set();
      calls.add(to);
      this.dependencies.set(from, calls);
      const callers = this.dependents.get(to) ?? new Set();
      callers.add(from);
      this.dependents.set(to, callers);
    }
  }

  /** Drops what is past its age everywhere, for services no longer reporting. */
  prune(now: number): void {
    for (const instance of this.instances.values()) {
      if (instance.lastSeen < now - EVENTS_KEEP_MS) {
        this.forget(instance);
        continue;
      }
      instance.events = trimEvents(instance.events, now);
    }
    for (const agent of this.agents.values()) agent.events = trimEvents(agent.events, now);
  }
}

/** `0.0.0.0:5432` → 5432, for evidence. */
export const portOf = (socket: string): number | undefined => splitSocket(socket)?.[1];
