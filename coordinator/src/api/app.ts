/**
 * The coordinator's HTTP API, for the CLI now and the dashboard later. It listens on
 * loopback by default; on any other address it refuses to start without an API token,
 * and then every request must carry it.
 */
import { CoralError, describeIssues, type FindingCounts, issueDetails, issueInvite, randomBytes, toHex } from "@coral-mesh/sdk-proto";
import { eq } from "drizzle-orm";
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AskService } from "../ask/service.js";
import type { AskTool } from "../ask/tool.js";
import type { Identity } from "../identity.js";
import { releaseAddress } from "../mesh/allocation.js";
import type { RelayView } from "../mesh/hub-relay.js";
import type { RegistrarState } from "../mesh/registrar.js";
import { createToken, listTokens, revokeToken, tokenState } from "../mesh/tokens.js";
import type { Bus } from "../store/bus.js";
import type { Store } from "../store/db.js";
import { findingCounts } from "../store/finding-queries.js";
import type { Observe } from "../store/observations.js";
import { agents, auditLog } from "../store/schema.js";
import { type AgentView, agentLister, type PeerView } from "./agent-views.js";
import { checkApiToken } from "./api-token.js";
import { authorized, dashboardRoutes, defaultDashboardDir, tokenExchange } from "./dashboard.js";
import { checkRequestHost, checkRequestOrigin, isLoopbackHost } from "./host-guard.js";
import { askPost } from "./routes/ask-post.js";
import { eventsList } from "./routes/events-list.js";
import { exportGet } from "./routes/export-get.js";
import { findingsRoutes } from "./routes/findings.js";
import { mcpRoute } from "./routes/mcp.js";
import { metricsGet } from "./routes/metrics-get.js";
import { metricsLatest } from "./routes/metrics-latest.js";
import { prometheusMetrics } from "./routes/prometheus-metrics.js";
import { servicesList } from "./routes/services-list.js";
import { streamRoute } from "./routes/stream.js";
import { topologyGet } from "./routes/topology-get.js";
import { tokenRequestLabels, tokenRequestSchema } from "./token-request.js";

export interface ApiOptions {
  db: Store;
  identity: Identity;
  discoveryUrl: string;
  mesh: { address: string; listenPort: number };
  heartbeatIntervalMs: number;
  discoveryState: () => RegistrarState;
  /** The hub's end of the mesh's relay, if it has one (not with `--wireguard off`). */
  relayState?: () => RelayView;
  /** Path and endpoint of each agent, from the hub's WireGuard peer table. */
  peers: () => Promise<Map<string, PeerView>>;
  /** The coordinator runs without WireGuard: agents reach it over loopback. */
  loopback?: boolean;
  removePeer: (publicKey: string) => Promise<void>;
  /** After `coral agents remove`: the coordinator logs it and tells discovery at once. */
  onAgentRemoved?: (agent: { name: string; meshIp: string }) => void;
  /** Called after a token is made (the coordinator then looks for joins more often). */
  onTokenCreated?: () => void;
  /** Records the coordinator's own observations (`agent.removed`). */
  observe?: Observe;
  /** Bearer token every request must carry; required when listening beyond loopback. */
  token?: string;
  /** What the store just learned, for `GET /v1/stream`; without it the route is absent. */
  bus?: Bus;
  /** The tools over the store; with them, `POST /v1/mcp` serves them over MCP. */
  askTools?: AskTool[];
  /** `coral ask` and the dashboard's questions (`POST /v1/ask`); without it the route is absent. */
  ask?: AskService;
  /** The built dashboard (default: `dashboard/` in this package). */
  dashboardDir?: string;
  now?: () => number;
}

export type { AgentView };

export interface StatusView {
  mesh: { id: string; address: string; listenPort: number };
  discovery: { url: string } & RegistrarState;
  /** The hub's connection to the mesh's relay; absent without WireGuard (and from older coordinators). */
  relay?: RelayView;
  agents: AgentView[];
  /** Open findings by severity; absent from coordinators older than the findings engine. */
  findings?: FindingCounts;
}

export interface TokenView {
  id: string;
  name: string | null;
  createdAt: number;
  expiresAt: number;
  uses: number;
  maxUses: number;
  state: string;
}

export interface CreatedTokenView {
  id: string;
  name: string | null;
  expiresAt: number;
  uses: number;
  invite: string;
}

export function createApiApp(options: ApiOptions): Hono {
  const app = new Hono();
  const now = () => options.now?.() ?? Date.now();

  app.use(async (c, next) => {
    if (!options.token) checkRequestHost(c.req.url);
    checkRequestOrigin(c.req.method, c.req.header("origin"), c.req.url, c.req.header("host"));
    const exchanged = tokenExchange(c, options.token);
    if (exchanged) return exchanged;
    if (options.token && !authorized(c, options.token)) {
      throw new CoralError(
        "api_unauthorized",
        "This coordinator's API needs its token: pass --api-token, or set CORAL_API_TOKEN (in a browser, open the dashboard once as /?token=TOKEN).",
      );
    }
    await next();
  });

  const listAgents = agentLister({
    db: options.db,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    peers: options.peers,
    loopback: options.loopback,
    now,
  });

  app.get("/v1/status", async (c) =>
    c.json<StatusView>({
      mesh: { id: options.identity.meshId, address: options.mesh.address, listenPort: options.mesh.listenPort },
      discovery: { url: options.discoveryUrl, ...options.discoveryState() },
      ...(options.relayState ? { relay: options.relayState() } : {}),
      agents: await listAgents(),
      findings: findingCounts(options.db),
    }),
  );

  app.get("/v1/agents", async (c) => c.json({ agents: await listAgents() }));

  app.delete("/v1/agents/:name", async (c) => {
    const name = c.req.param("name");
    const agent = options.db.select().from(agents).where(eq(agents.name, name)).get();
    if (!agent) throw new CoralError("agent_not_found", `No agent named ${name}; \`coral agents\` lists them.`);
    await options.removePeer(agent.wireguardKey);
    const at = now();
    options.db.transaction((tx) => {
      tx.delete(agents).where(eq(agents.name, name)).run();
      tx.insert(auditLog)
        .values({
          time: at,
          action: "agent.removed",
          subject: name,
          details: JSON.stringify({ meshIp: agent.meshIp, wireguardKey: agent.wireguardKey }),
        })
        .run();
    });
    releaseAddress(options.db, agent.wireguardKey, at);
    options.observe?.({
      kind: "agent.removed",
      agent: name,
      subject: { kind: "agent", id: name, name },
      attributes: { meshIp: agent.meshIp },
      time: at,
    });
    options.onAgentRemoved?.({ name, meshIp: agent.meshIp });
    return c.json({ removed: name });
  });

  app.post("/v1/tokens", async (c) => {
    const parsed = tokenRequestSchema.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) {
      throw new CoralError("invalid_body", `${describeIssues(parsed.error, tokenRequestLabels)}.`, {
        details: { issues: issueDetails(parsed.error, tokenRequestLabels) },
      });
    }
    const { ttlMs, uses, name } = parsed.data;
    const token = createToken(options.db, { ttlMs, maxUses: uses, ...(name ? { name } : {}) }, now());
    options.onTokenCreated?.();
    const invite = await issueInvite(options.identity.signing, {
      discoveryUrl: options.discoveryUrl,
      tokenId: token.id,
      secret: token.secret,
      expiresAt: token.expiresAt,
    });
    return c.json({ id: token.id, name: name ?? null, expiresAt: token.expiresAt, uses, invite }, 201);
  });

  app.get("/v1/tokens", (c) => {
    const at = now();
    return c.json({
      tokens: listTokens(options.db).map((t) => ({
        id: t.id,
        name: t.name,
        createdAt: t.createdAt,
        expiresAt: t.expiresAt,
        uses: t.uses,
        maxUses: t.maxUses,
        state: tokenState(t, at),
      })),
    });
  });

  app.delete("/v1/tokens/:id", (c) => {
    revokeToken(options.db, c.req.param("id"), now());
    return c.json({ revoked: c.req.param("id") });
  });

  eventsList(app, options.db);
  servicesList(app, options.db, now);
  topologyGet(app, options.db, now);
  metricsGet(app, options.db, now);
  findingsRoutes(app, options.db, now);
  metricsLatest(app, options.db, now);
  exportGet(app, options.db, options.identity.meshId, now);
  prometheusMetrics(app, options.db, now, options.heartbeatIntervalMs);
  if (options.bus) streamRoute(app, options.bus);
  if (options.askTools) mcpRoute(app, options.askTools);
  if (options.ask) askPost(app, options.ask);
  dashboardRoutes(app, options.dashboardDir ?? defaultDashboardDir());

  app.notFound(() => {
    throw new CoralError("not_found", "No such API route.");
  });
  app.onError((error, c) => {
    const coral =
      error instanceof CoralError ? error : new CoralError("internal_error", "The coordinator failed unexpectedly; see its log.");
    if (coral.code === "internal_error") console.error(error);
    return c.json(coral.toBody(toHex(randomBytes(8))), coral.status as ContentfulStatusCode);
  });
  return app;
}

/** The rule for where the API may listen: beyond loopback only with a token. */
export function checkApiExposure(host: string, token: string | undefined): void {
  checkApiToken(token);
  if (!isLoopbackHost(host) && !token) {
    throw new CoralError(
      "api_token_required",
      `The API would listen on ${host}, beyond this machine, without a token: set --api-token (32+ characters) or listen on 127.0.0.1.`,
    );
  }
}
