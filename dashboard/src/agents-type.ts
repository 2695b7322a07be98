/**
 * `GET /v1/agents` as docs/cli.md documents it (`coral agents --json`). The coordinator keeps
 * this shape in its own package, not in sdk-proto, so the page spells out what it reads.
 */
export interface AgentView {
  name: string;
  meshIp: string;
  status: "healthy" | "degraded" | "unhealthy" | "offline";
  lastSeen: number | null;
  path: string;
  endpoint: string | null;
  version: string | null;
  hostname: string | null;
  plugins: Array<{ name: string; state: string; lastError: string | null }>;
}
