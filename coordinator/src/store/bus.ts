/**
 * The in-process bus: what the store just learned, for whoever follows it live (the findings
 * engine, the dashboard's WebSocket). Messages go out after the transaction that stored them
 * committed, synchronously and in order; a listener that throws is logged and never fails
 * the ingest that notified it.
 */
import type { Finding } from "@coral-mesh/sdk-proto";

export interface StoredEvent {
  id: number;
  agent: string | null;
  kind: string;
  time: number;
  subject: { kind: string; id: string; name: string | null };
  attributes: Record<string, string>;
  source: string | null;
}

/** A metric sample as stored: its series (subject, name, labels as canonical JSON), on the agent's clock. */
export interface StoredSample {
  subjectKind: string;
  subjectId: string;
  name: string;
  labels: string;
  time: number;
  value: number;
}

/** What moved of a service instance: seen anew, its health, its sockets, or whether a process of it runs. */
export type ServiceChange = "observed" | "health" | "listening" | "running";

export interface BusMessages {
  /** Report batches stored (retries that stored nothing are not announced). */
  "batches.stored": {
    agent: string;
    receivedAt: number;
    sequences: number[];
    events: StoredEvent[];
    samples: number;
    /** The samples themselves, for followers that analyse them. */
    metrics: StoredSample[];
    connections: number;
  };
  /** An event the coordinator observed itself (agent health, plugins, paths, discovery). */
  "event.recorded": StoredEvent;
  /** An agent's evaluated health changed. */
  "health.changed": { agent: string; from: string | null; to: string; at: number };
  /** A service instance appeared, or its version, health or listening sockets changed. */
  "service.changed": { agent: string; key: string; name: string; change: ServiceChange };
  /** A finding was opened, updated or resolved, after the findings table was written. */
  "finding.changed": { change: "opened" | "updated" | "resolved"; finding: Finding };
}

type Listener<K extends keyof BusMessages> = (message: BusMessages[K]) => void;

export class Bus {
  private readonly listeners = new Map<keyof BusMessages, Set<Listener<never>>>();

  constructor(private readonly log: (line: string) => void = () => {}) {}

  /** Follows one kind of message; returns the function that stops following it. */
  on<K extends keyof BusMessages>(kind: K, listener: Listener<K>): () => void {
    const set = this.listeners.get(kind) ?? new Set();
    set.add(listener as Listener<never>);
    this.listeners.set(kind, set);
    return () => set.delete(listener as Listener<never>);
  }

  emit<K extends keyof BusMessages>(kind: K, message: BusMessages[K]): void {
    const set = this.listeners.get(kind);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as Listener<K>)(message);
      } catch (error) {
        this.log(`a follower of ${kind} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
}
