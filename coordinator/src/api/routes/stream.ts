/**
 * GET /v1/stream: what the bus says, as Server-Sent Events, for the dashboard. Each message is
 * small (what changed and where, never the data itself): the page fetches what it shows again
 * through the documented routes. A follower that falls behind is sent `reset` and its backlog
 * dropped, so a slow browser costs memory bounded by MAX_BACKLOG, not by the ingest rate.
 */
import type { StreamMessage } from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { Bus } from "../../store/bus.js";

const MAX_BACKLOG = 500;
/** Comments keep idle connections open through proxies that close quiet ones. */
const KEEPALIVE_MS = 15_000;
/** What EventSource waits before reconnecting after the stream ends. */
const RETRY_MS = 2_000;

export function streamRoute(app: Hono, bus: Bus): void {
  app.get("/v1/stream", (c) =>
    streamSSE(c, async (stream) => {
      const backlog: StreamMessage[] = [];
      let wake: (() => void) | undefined;
      let overflowed = false;
      const push = (message: StreamMessage) => {
        if (backlog.length >= MAX_BACKLOG) {
          overflowed = true;
          backlog.length = 0;
        } else backlog.push(message);
        wake?.();
      };
      const stops = [
        bus.on("batches.stored", (m) =>
          push({
            type: "batch",
            agent: m.agent,
            events: m.events.length,
            samples: m.samples,
            connections: m.connections,
            lastEventId: m.events.at(-1)?.id ?? null,
          }),
        ),
        bus.on("event.recorded", (e) =>
          push({ type: "event", id: e.id, agent: e.agent, kind: e.kind, subject: e.subject.name ?? e.subject.id }),
        ),
        bus.on("health.changed", (m) => push({ type: "health", agent: m.agent, from: m.from, to: m.to })),
        bus.on("service.changed", (m) => push({ type: "service", agent: m.agent, name: m.name, change: m.change })),
        bus.on("finding.changed", (m) =>
          push({ type: "finding", change: m.change, id: m.finding.id, service: m.finding.service, severity: m.finding.severity }),
        ),
      ];
      let closed = false;
      stream.onAbort(() => {
        closed = true;
        wake?.();
      });
      try {
        await stream.writeSSE({ event: "hello", data: "{}", retry: RETRY_MS });
        while (!closed) {
          if (backlog.length === 0 && !overflowed) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, KEEPALIVE_MS);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
            wake = undefined;
            if (backlog.length === 0 && !overflowed && !closed) await stream.write(": keepalive\n\n");
            continue;
          }
          if (overflowed) {
            overflowed = false;
            await stream.writeSSE({ event: "reset", data: "{}" });
          }
          for (const message of backlog.splice(0)) await stream.writeSSE({ event: message.type, data: JSON.stringify(message) });
        }
      } finally {
        for (const stop of stops) stop();
      }
    }),
  );
}
