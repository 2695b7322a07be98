/** The mesh: every agent's health, path, endpoint, version and plugins. */
import type { AgentView } from "../agents-type.js";
import { api } from "../api.js";
import { ago } from "../format.js";
import { useLive } from "../live.js";
import { href } from "../route.js";

export function AgentsPage() {
  const { data, error } = useLive(
    () => api<{ agents: AgentView[] }>("/v1/agents"),
    [],
    (m) =>
      m.type === "health" || (m.type === "event" && m.kind.startsWith("agent.")) || (m.type === "event" && m.kind.startsWith("plugin.")),
  );
  if (error) return <p class="error">{error.message}</p>;
  if (!data) return <p class="muted">Loading…</p>;
  return (
    <section aria-labelledby="agents-title">
      <h1 id="agents-title">Agents ({data.agents.length})</h1>
      <table>
        <thead>
          <tr>
            <th>name</th>
            <th>health</th>
            <th>path</th>
            <th>endpoint</th>
            <th>mesh address</th>
            <th>host</th>
            <th>version</th>
            <th>plugins</th>
            <th>last seen</th>
          </tr>
        </thead>
        <tbody>
          {data.agents.map((a) => (
            <tr key={a.name} data-agent={a.name}>
              <td>
                <a href={href.timeline({ agent: a.name })}>{a.name}</a>
              </td>
              <td class={a.status}>{a.status}</td>
              <td>{a.path}</td>
              <td>{a.endpoint ?? "—"}</td>
              <td>{a.meshIp}</td>
              <td>{a.hostname ?? "—"}</td>
              <td>{a.version ?? "—"}</td>
              <td>
                {a.plugins.map((p) => (
                  <span
                    key={p.name}
                    class={p.state === "running" ? "ok" : p.state === "failed" ? "down" : "warning"}
                    title={p.lastError ?? ""}
                  >
                    {p.name} ({p.state}){" "}
                  </span>
                ))}
              </td>
              <td>{a.lastSeen ? ago(a.lastSeen) : "never"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
