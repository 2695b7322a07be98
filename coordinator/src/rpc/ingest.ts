/** Storing report batches exactly once per (agent, sequence), whatever the agent retries. */
import type { meshV1 } from "@coral/sdk-proto/grpc";
import { sql } from "drizzle-orm";
import type { Store } from "../store/db.js";
import { batches, events, metricSamples, topologyEdges } from "../store/schema.js";

const SUBJECT_KINDS: Record<number, string> = { 1: "agent", 2: "service", 3: "process", 4: "host" };

/** Stores the batches not seen before; returns every sequence now stored (to acknowledge). */
export function ingestBatches(db: Store, agentName: string, incoming: readonly meshV1.Batch[], now: number): number[] {
  return db.transaction((tx) => {
    const acked: number[] = [];
    for (const batch of incoming) {
      const inserted = tx
        .insert(batches)
        .values({ agentName, sequence: batch.sequence, receivedAt: now, droppedBefore: batch.droppedBefore })
        .onConflictDoNothing()
        .run();
      acked.push(batch.sequence);
      if (inserted.changes === 0) continue; // a retry: already stored
      batch.events.forEach((event, position) => {
        tx.insert(events)
          .values({
            agentName,
            sequence: batch.sequence,
            position,
            kind: event.kind,
            time: event.timeUnixMs,
            subjectKind: SUBJECT_KINDS[event.subject?.kind ?? 0] ?? "unknown",
            subjectId: event.subject?.id ?? "",
            subjectName: event.subject?.name || null,
            attributes: JSON.stringify(event.attributes),
            evidence: event.evidenceJson || "{}",
            source: event.source || null,
          })
          .run();
      });
      for (const metric of batch.metrics) {
        tx.insert(metricSamples)
          .values({
            agentName,
            name: metric.name,
            subjectId: metric.subject?.id ?? "",
            time: metric.timeUnixMs,
            value: metric.value,
            labels: JSON.stringify(metric.labels),
          })
          .run();
      }
      for (const connection of batch.connections) {
        const seenAt = connection.observedAtUnixMs || now;
        tx.insert(topologyEdges)
          .values({
            agentName,
            fromService: connection.subject?.id || connection.processName || `pid:${connection.pid}`,
            toAddress: connection.remoteAddress,
            toPort: connection.remotePort,
            protocol: connection.protocol || "tcp",
            firstSeenAt: seenAt,
            lastSeenAt: seenAt,
          })
          .onConflictDoUpdate({
            target: [
              topologyEdges.agentName,
              topologyEdges.fromService,
              topologyEdges.toAddress,
              topologyEdges.toPort,
              topologyEdges.protocol,
            ],
            set: {
              lastSeenAt: sql`max(${topologyEdges.lastSeenAt}, excluded.last_seen_at)`,
              observations: sql`${topologyEdges.observations} + 1`,
            },
          })
          .run();
      }
    }
    return acked;
  });
}
