/**
 * What the coordinator observes itself becomes events beside the agents' own: agents going
 * unhealthy and back, plugins failing and recovering, paths changing, agents enrolled and
 * removed, discovery failing and back. Their source is "coordinator"; they belong to no batch.
 */
import type { Bus, StoredEvent } from "./bus.js";
import type { Store } from "./db.js";
import { events } from "./schema.js";

export interface Observation {
  kind: string;
  /** The agent concerned; null for the coordinator's own (discovery). */
  agent: string | null;
  subject: { kind: "agent" | "coordinator"; id: string; name?: string };
  attributes?: Record<string, string>;
  evidence?: unknown;
  time: number;
}

export type Observe = (observation: Observation) => StoredEvent;

export function observer(db: Store, bus?: Bus): Observe {
  return (o) => {
    const attributes = o.attributes ?? {};
    const row = db
      .insert(events)
      .values({
        agentName: o.agent,
        kind: o.kind,
        time: o.time,
        receivedAt: o.time,
        subjectKind: o.subject.kind,
        subjectId: o.subject.id,
        subjectName: o.subject.name ?? null,
        attributes: JSON.stringify(attributes),
        evidence: JSON.stringify(o.evidence ?? {}),
        source: "coordinator",
      })
      .returning({ id: events.id })
      .get();
    const stored: StoredEvent = {
      id: row.id,
      agent: o.agent,
      kind: o.kind,
      time: o.time,
      subject: { kind: o.subject.kind, id: o.subject.id, name: o.subject.name ?? null },
      attributes,
      source: "coordinator",
    };
    bus?.emit("event.recorded", stored);
    return stored;
  };
}
