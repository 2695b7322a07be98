/** Storing report batches exactly once per (agent, sequence), whatever the agent retries. */
import type { meshV1 } from "@coral/sdk-proto/grpc";
import type { Store } from "../store/db.js";

const SUBJECT_KINDS: Record<number, string> = { 1: "agent", 2: "service", 3: "process", 4: "host" };

export type Ingest = (agentName: string, incoming: readonly meshV1.Batch[], now: number) => number[];

/**
 * Prepares the statements once (Report is the hottest path of a busy coordinator) and
 * returns the function that stores the batches not seen before, returning every
 * sequence now stored (to acknowledge).
 */
export function prepareIngest(db: Store): Ingest {
  const sqlite = db.$client;
  const insertBatch = sqlite.prepare(
    "INSERT INTO batches (agent_name, sequence, received_at, dropped_before) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
  );
  const insertEvent = sqlite.prepare(
    `INSERT INTO events (agent_name, sequence, position, kind, time, subject_kind, subject_id, subject_name, attributes, evidence, source)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertSample = sqlite.prepare(
    "INSERT INTO metric_samples (agent_name, name, subject_id, time, value, labels) VALUES (?, ?, ?, ?, ?, ?)",
  );
  const upsertEdge = sqlite.prepare(
    `INSERT INTO topology_edges (agent_name, from_service, to_address, to_port, protocol, first_seen_at, last_seen_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (agent_name, from_service, to_address, to_port, protocol) DO UPDATE SET
       last_seen_at = max(topology_edges.last_seen_at, excluded.last_seen_at),
       observations = topology_edges.observations + 1`,
  );
  // The service inventory: what a collector observed, the SDK's word winning over a passive guess.
  const observeService = sqlite.prepare(
    `INSERT INTO services (agent_name, key, name, version, source, details, first_seen_at, last_seen_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (agent_name, key) DO UPDATE SET
       name = CASE WHEN excluded.source = 'sdk' OR services.source != 'sdk' THEN excluded.name ELSE services.name END,
       version = coalesce(excluded.version, services.version),
       source = CASE WHEN services.source = 'sdk' THEN 'sdk' ELSE excluded.source END,
       details = CASE WHEN excluded.source = 'sdk' OR services.source != 'sdk' THEN excluded.details ELSE services.details END,
       last_seen_at = max(services.last_seen_at, excluded.last_seen_at)`,
  );
  const serviceHealth = sqlite.prepare(
    "UPDATE services SET health = ?, last_seen_at = max(last_seen_at, ?) WHERE agent_name = ? AND key = ?",
  );

  return sqlite.transaction((agentName: string, incoming: readonly meshV1.Batch[], now: number): number[] => {
    const acked: number[] = [];
    for (const batch of incoming) {
      const inserted = insertBatch.run(agentName, batch.sequence, now, batch.droppedBefore);
      acked.push(batch.sequence);
      if (inserted.changes === 0) continue; // a retry: already stored
      batch.events.forEach((event, position) => {
        insertEvent.run(
          agentName,
          batch.sequence,
          position,
          event.kind,
          event.timeUnixMs,
          SUBJECT_KINDS[event.subject?.kind ?? 0] ?? "unknown",
          event.subject?.id ?? "",
          event.subject?.name || null,
          JSON.stringify(event.attributes),
          event.evidenceJson || "{}",
          event.source || null,
        );
        const subject = event.subject;
        if (subject && event.kind === "service.observed") {
          observeService.run(
            agentName,
            subject.id,
            subject.name || subject.id,
            event.attributes.version || null,
            event.attributes.source === "sdk" ? "sdk" : "passive",
            JSON.stringify(event.attributes),
            event.timeUnixMs,
            event.timeUnixMs,
          );
        } else if (subject && event.kind === "service.health_changed" && event.attributes.to) {
          serviceHealth.run(event.attributes.to, event.timeUnixMs, agentName, subject.id);
        }
      });
      for (const metric of batch.metrics) {
        insertSample.run(agentName, metric.name, metric.subject?.id ?? "", metric.timeUnixMs, metric.value, JSON.stringify(metric.labels));
      }
      for (const connection of batch.connections) {
        const seenAt = connection.observedAtUnixMs || now;
        upsertEdge.run(
          agentName,
          connection.subject?.id || connection.processName || `pid:${connection.pid}`,
          connection.remoteAddress,
          connection.remotePort,
          connection.protocol || "tcp",
          seenAt,
          seenAt,
        );
      }
    }
    return acked;
  });
}
