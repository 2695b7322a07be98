import type { CoralError } from "@coral-mesh/sdk-proto";
import type { RelayRoom } from "./relay/room.js";

/** Bindings from wrangler.toml, plus secrets set with `wrangler secret put`. */
export interface Env {
  DB: D1Database;
  /** Requests per client address (CF-Connecting-IP). */
  RL_CLIENT: RateLimit;
  /** Requests per mesh id. */
  RL_MESH: RateLimit;
  /** One relay room per mesh (src/relay/room.ts). */
  RELAY: DurableObjectNamespace<RelayRoom>;
  /** Bearer token for `GET /v1/admin/stats`; the admin API is off without it. */
  ADMIN_TOKEN?: string;
  /** "1" adds a `coral-d1-rows-written` header to responses (benchmarks use it). */
  CORAL_DEBUG_D1?: string;
}

export interface Variables {
  requestId: string;
  clientAddress: string | null;
  /** Rows this request wrote to D1, reported when CORAL_DEBUG_D1 is on. */
  rowsWritten: number;
  error: CoralError | undefined;
}

export interface AppEnv {
  Bindings: Env;
  Variables: Variables;
}

/** Must match `period` of both `[[ratelimits]]` in wrangler.toml: the binding does not report it. */
export const RATE_LIMIT_PERIOD_SECONDS = 10;
