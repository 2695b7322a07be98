import { type AdminStats, CoralError, sha256 } from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import { openDb, readStats } from "../db/store.js";
import type { AppEnv } from "../env.js";
import { refusalCounter } from "../refusals.js";

const MIN_TOKEN_LENGTH = 32;

/** Operator counters, behind a bearer token kept as a Worker secret. */
export async function getAdminStats(c: Context<AppEnv>): Promise<Response> {
  const token = c.env.ADMIN_TOKEN;
  if (!token || token.length < MIN_TOKEN_LENGTH) {
    throw new CoralError(
      "admin_disabled",
      `The admin API is off: set a secret of at least ${MIN_TOKEN_LENGTH} characters with \`wrangler secret put ADMIN_TOKEN\` (for \`wrangler dev\`, as ADMIN_TOKEN=... in .dev.vars next to wrangler.toml).`,
    );
  }
  // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are `Bearer`.
  const presented = /^bearer +(\S+) *$/i.exec(c.req.header("authorization") ?? "")?.[1];
  if (!presented || !(await sameSecret(presented, token))) {
    throw new CoralError("admin_unauthorized", "Send `authorization: Bearer <ADMIN_TOKEN>` with the Worker's admin token.", {
      headers: { "www-authenticate": 'Bearer realm="coral-discovery"' },
    });
  }
  const db = openDb(c.env.DB);
  const now = Date.now();
  await refusalCounter.flush(db, now);
  const stats: AdminStats = await readStats(db, now);
  return c.json(stats);
}

/** Compares digests in constant time, so response timing says nothing about the token. */
async function sameSecret(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([sha256(a), sha256(b)]);
  let diff = 0;
  for (let i = 0; i < da.length; i++) diff |= (da[i] ?? 0) ^ (db[i] ?? 0);
  return diff === 0;
}
