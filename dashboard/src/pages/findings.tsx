/** Open findings, the summary of the last day, and the resolved findings after them. */
import type { FindingsResponse, SummaryResponse } from "@coral-mesh/sdk-proto";
import { api } from "../api.js";
import { ago, time } from "../format.js";
import { useLive } from "../live.js";
import { href } from "../route.js";

export function FindingsPage() {
  const { data, error } = useLive(
    async () => {
      const [findings, summary] = await Promise.all([
        api<FindingsResponse>("/v1/findings", { all: "true", limit: 200 }),
        api<SummaryResponse>("/v1/summary"),
      ]);
      return { findings: findings.findings, summary };
    },
    [],
    (m) => m.type === "finding" || m.type === "service",
  );
  if (error) return <p class="error">{error.message}</p>;
  if (!data) return <p class="muted">Loading…</p>;
  const { findings, summary } = data;
  const open = findings.filter((f) => f.state === "open");
  const resolved = findings.filter((f) => f.state === "resolved");
  return (
    <section aria-labelledby="findings-title">
      <h1 id="findings-title">Findings</h1>
      <div class="cards">
        <div class="card critical">
          <b>{summary.open.critical}</b>critical
        </div>
        <div class="card warning">
          <b>{summary.open.warning}</b>warning
        </div>
        <div class="card info">
          <b>{summary.open.info}</b>info
        </div>
        <div class="card">
          <b>{Math.round(summary.sdk.adoption * 100)}%</b>services on the SDK
        </div>
      </div>
      <h2>Open ({open.length})</h2>
      <FindingTable findings={open} />
      <h2>The last day</h2>
      <p class="muted">
        {time(summary.since)} – {time(summary.until)}: {summary.changes.deploys.length} deploy(s), {summary.changes.newServices.length} new
        service(s), {summary.changes.newDependencies.length} new dependenc(ies), {summary.incidents.length} incident(s);{" "}
        {summary.quiet.length} quiet service(s).
      </p>
      {summary.changes.deploys.length > 0 && (
        <ul>
          {summary.changes.deploys.map((d) => (
            <li key={d.eventId}>
              {time(d.time)} <a href={href.service(d.service)}>{d.service}</a> {d.from ?? "?"} → {d.to ?? "?"}
            </li>
          ))}
        </ul>
      )}
      {summary.incidents.length > 0 && (
        <ul>
          {summary.incidents.map((i) => (
            <li key={i.finding.id}>
              <span class={`badge ${i.finding.severity}`}>{i.finding.severity}</span> {i.finding.summary}
              {i.fixedBy ? <span class="muted"> — fixed by {i.fixedBy}</span> : null}
            </li>
          ))}
        </ul>
      )}
      {summary.sdk.passiveOnly.length > 0 && (
        <>
          <h2>What the SDK would add</h2>
          <ul>
            {summary.sdk.passiveOnly.slice(0, 20).map((p) => (
              <li key={p.service}>
                <a href={href.service(p.service)}>{p.service}</a>: <span class="muted">{p.gain}</span>
              </li>
            ))}
          </ul>
        </>
      )}
      <h2>Resolved ({resolved.length})</h2>
      <FindingTable findings={resolved} />
    </section>
  );
}

function FindingTable({ findings }: { findings: FindingsResponse["findings"] }) {
  if (findings.length === 0) return <p class="muted">None.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>severity</th>
          <th>kind</th>
          <th>service</th>
          <th>summary</th>
          <th>recommendation</th>
          <th>opened</th>
        </tr>
      </thead>
      <tbody>
        {findings.map((f) => (
          <tr key={f.id} data-finding={f.id}>
            <td class={f.severity}>{f.severity}</td>
            <td>{f.kind}</td>
            <td>{f.service ? <a href={href.service(f.service)}>{f.service}</a> : (f.agent ?? "—")}</td>
            <td>{f.summary}</td>
            <td class="muted">{f.recommendation.step}</td>
            <td title={time(f.openedAt)}>{ago(f.openedAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
