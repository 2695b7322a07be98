/**
 * Events and findings across the mesh, newest first, filtered by service, agent and kind, a
 * page at a time through the events' `before` cursor. Findings opened or resolved within the
 * page's span of time are shown among its events. The first page follows changes live.
 */
import type { EventsResponse, EventView, Finding, FindingsResponse } from "@coral-mesh/sdk-proto";
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { time } from "../format.js";
import { useLive } from "../live.js";
import { href } from "../route.js";

export const PAGE_SIZE = 50;

type Row = { t: number; event: EventView } | { t: number; finding: Finding; what: "opened" | "resolved" };

export function TimelinePage({ params }: { params: URLSearchParams }) {
  const filters = { service: params.get("service") ?? "", agent: params.get("agent") ?? "", kind: params.get("kind") ?? "" };
  const before = params.get("before") ?? "";
  const [draft, setDraft] = useState(filters);
  const key = `${filters.service}|${filters.agent}|${filters.kind}|${before}`;

  const { data, error } = useLive(
    async () => {
      const page = await api<EventsResponse>("/v1/events", { ...filters, before, limit: PAGE_SIZE });
      const newest = before ? (page.events[0]?.coordinatorTime ?? Date.now()) : Date.now();
      const oldest = page.next === null ? 0 : (page.events.at(-1)?.coordinatorTime ?? 0);
      const findings = filters.kind
        ? []
        : (
            await api<FindingsResponse>("/v1/findings", {
              all: "true",
              since: oldest,
              limit: 1000,
              ...(filters.service ? { service: filters.service } : {}),
              ...(filters.agent ? { agent: filters.agent } : {}),
            })
          ).findings;
      const rows: Row[] = page.events.map((event) => ({ t: event.coordinatorTime, event }));
      for (const finding of findings) {
        if (finding.openedAt >= oldest && finding.openedAt <= newest) rows.push({ t: finding.openedAt, finding, what: "opened" });
        if (finding.resolvedAt !== null && finding.resolvedAt >= oldest && finding.resolvedAt <= newest) {
          rows.push({ t: finding.resolvedAt, finding, what: "resolved" });
        }
      }
      rows.sort((a, b) => b.t - a.t);
      return { rows, next: page.next };
    },
    [key],
    (m) => !before && ((m.type === "batch" && m.events > 0) || m.type === "event" || m.type === "finding"),
  );

  return (
    <section aria-labelledby="timeline-title">
      <h1 id="timeline-title">Timeline</h1>
      <form
        class="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          location.hash = href.timeline(draft);
        }}
      >
        {(["service", "agent", "kind"] as const).map((field) => (
          <label key={field}>
            {field}{" "}
            <input
              name={field}
              value={draft[field]}
              size={14}
              placeholder={field === "kind" ? "e.g. service.deployed" : "any"}
              onInput={(e) => setDraft({ ...draft, [field]: (e.target as HTMLInputElement).value })}
            />
          </label>
        ))}
        <button type="submit">Filter</button>
        {before && (
          <a href={href.timeline(filters)} data-testid="newest">
            newest
          </a>
        )}
      </form>
      {error && <p class="error">{error.message}</p>}
      {data && (
        <>
          <table data-rows={data.rows.length}>
            <thead>
              <tr>
                <th>time</th>
                <th>agent</th>
                <th>what</th>
                <th>subject</th>
                <th>details</th>
              </tr>
            </thead>
            <tbody>
              {data.rows.map((row) =>
                "event" in row ? (
                  <tr key={`e${row.event.id}`} data-event={row.event.id}>
                    <td>{time(row.t)}</td>
                    <td>{row.event.agent ?? "coordinator"}</td>
                    <td>
                      <a href={href.timeline({ ...filters, kind: row.event.kind })}>{row.event.kind}</a>
                    </td>
                    <td>
                      {row.event.subject.kind === "service" && row.event.subject.name ? (
                        <a href={href.service(row.event.subject.name)}>{row.event.subject.name}</a>
                      ) : (
                        (row.event.subject.name ?? row.event.subject.id)
                      )}
                    </td>
                    <td class="muted">
                      {Object.entries(row.event.attributes)
                        .map(([k, v]) => `${k}=${v}`)
                        .join(" ")}
                    </td>
                  </tr>
                ) : (
                  <tr key={`f${row.finding.id}${row.what}`} data-finding={row.finding.id}>
                    <td>{time(row.t)}</td>
                    <td>{row.finding.agent ?? "—"}</td>
                    <td>
                      <span class={`badge ${row.finding.severity}`}>finding {row.what}</span>
                    </td>
                    <td>{row.finding.service ? <a href={href.service(row.finding.service)}>{row.finding.service}</a> : "—"}</td>
                    <td>{row.finding.summary}</td>
                  </tr>
                ),
              )}
            </tbody>
          </table>
          {data.rows.length === 0 && <p class="muted">Nothing stored that matches.</p>}
          <p>
            {data.next !== null ? (
              <a href={href.timeline({ ...filters, before: String(data.next) })} data-testid="older">
                Older
              </a>
            ) : (
              <span class="muted">The oldest stored.</span>
            )}
          </p>
        </>
      )}
    </section>
  );
}
