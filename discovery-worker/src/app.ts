import { CoralError, meshIdSchema, randomBytes, toHex } from "@coral-mesh/sdk-proto";
import { type Context, Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { openDb } from "./db/store.js";
import { type AppEnv, RATE_LIMIT_PERIOD_SECONDS } from "./env.js";
import { refusalCounter } from "./refusals.js";
import { getAdminStats } from "./routes/admin-stats.js";
import { getAnswer } from "./routes/answer-get.js";
import { putAnswer } from "./routes/answer-put.js";
import { getCoordinator } from "./routes/coordinator-get.js";
import { putCoordinator } from "./routes/coordinator-put.js";
import { getHealth } from "./routes/health-get.js";
import { createJoin } from "./routes/joins-create.js";
import { listJoins } from "./routes/joins-list.js";
import { connectRelay } from "./routes/relay-connect.js";

type Handler = (c: Context<AppEnv>) => Response | Promise<Response>;

/** Every route, by path, then by method. Paths not here answer `not_found`; other methods `method_not_allowed`. */
const routes: Record<string, Partial<Record<"GET" | "PUT" | "POST", Handler>>> = {
  "/v1/health": { GET: getHealth },
  "/v1/meshes/:meshId/coordinator": { GET: getCoordinator, PUT: putCoordinator },
  "/v1/meshes/:meshId/joins": { GET: listJoins, POST: createJoin },
  "/v1/meshes/:meshId/joins/:joinId/answer": { GET: getAnswer, PUT: putAnswer },
  "/v1/meshes/:meshId/relay": { GET: connectRelay },
  "/v1/admin/stats": { GET: getAdminStats },
};

export function createApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    c.set("requestId", c.req.header("cf-ray") ?? toHex(randomBytes(8)));
    c.set("clientAddress", c.req.header("cf-connecting-ip") ?? null);
    c.set("rowsWritten", 0);
    await next();
    c.header("coral-request-id", c.get("requestId"));
    c.header("cache-control", "no-store");
    if (c.env.CORAL_DEBUG_D1 === "1") c.header("coral-d1-rows-written", String(c.get("rowsWritten")));
  });

  app.use(async (c, next) => {
    await rateLimit(c);
    await next();
  });

  for (const [path, methods] of Object.entries(routes)) {
    for (const [method, handler] of Object.entries(methods)) app.on(method, path, handler);
    const allow = Object.keys(methods).join(", ");
    app.all(path, (c) => {
      throw new CoralError("method_not_allowed", `${c.req.method} is not supported on this route; use ${allow}.`, { headers: { allow } });
    });
  }

  app.notFound((c) => errorResponse(c, new CoralError("not_found", "No such route; the API is described in docs/discovery.md.")));
  app.onError((error, c) => errorResponse(c, error));
  return app;
}

function errorResponse(c: Context<AppEnv>, error: unknown): Response {
  const coral =
    error instanceof CoralError
      ? error
      : new CoralError("internal_error", "Discovery failed unexpectedly; retry, and report it if it persists.");
  if (coral.code === "internal_error") console.error(`request ${c.get("requestId")} failed`, error);
  countRefusal(c, coral);
  return c.json(coral.toBody(c.get("requestId") ?? "unknown"), coral.status as ContentfulStatusCode, coral.headers);
}

async function rateLimit(c: Context<AppEnv>): Promise<void> {
  const client = c.get("clientAddress") ?? "unknown";
  const meshId = /^\/v1\/meshes\/([^/]+)/.exec(c.req.path)?.[1];
  const checks = [c.env.RL_CLIENT.limit({ key: `client:${client}` })];
  // Only well-formed mesh ids get a counter of their own; others are refused anyway.
  if (meshId && meshIdSchema.safeParse(meshId).success) checks.push(c.env.RL_MESH.limit({ key: `mesh:${meshId}` }));
  const outcomes = await Promise.all(checks);
  if (outcomes.some((outcome) => !outcome.success)) {
    throw new CoralError("rate_limited", `Too many requests; wait ${RATE_LIMIT_PERIOD_SECONDS} s before retrying.`, {
      headers: { "retry-after": String(RATE_LIMIT_PERIOD_SECONDS) },
    });
  }
}

function countRefusal(c: Context<AppEnv>, error: CoralError): void {
  refusalCounter.count(error.code);
  const now = Date.now();
  if (!refusalCounter.due(now)) return;
  const flush = refusalCounter.flush(openDb(c.env.DB), now).catch((flushError: unknown) => {
    console.error("could not record refusal counts", flushError);
  });
  try {
    c.executionCtx.waitUntil(flush);
  } catch {
    // No execution context (in-process tests): the flush still runs, unawaited.
  }
}
