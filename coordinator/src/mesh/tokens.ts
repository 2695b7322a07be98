/**
 * Join tokens: `coral token create` makes one; an agent presents its secret inside the
 * sealed join request. Only a hash of the secret is stored (Headscale-style pre-auth keys):
 * expired, used-up and revoked tokens are each refused with their own message.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { CoralError, toBase32, toBase64Url } from "@coral-mesh/sdk-proto";
import { and, desc, eq, gt, isNull, lt, sql } from "drizzle-orm";
import type { Store } from "../store/db.js";
import { auditLog, type TokenRow, tokens } from "../store/schema.js";

export interface CreatedToken {
  id: string;
  /** Shown once, inside the invite; never stored. */
  secret: string;
  expiresAt: number;
  maxUses: number;
}

const hash = (secret: string) => createHash("sha256").update(secret).digest("hex");

export function createToken(db: Store, options: { ttlMs: number; maxUses: number; name?: string }, now: number): CreatedToken {
  const id = toBase32(randomBytes(10));
  const secret = toBase64Url(randomBytes(32));
  const expiresAt = now + options.ttlMs;
  db.transaction((tx) => {
    tx.insert(tokens)
      .values({ id, name: options.name ?? null, secretHash: hash(secret), createdAt: now, expiresAt, maxUses: options.maxUses })
      .run();
    tx.insert(auditLog)
      .values({
        time: now,
        action: "token.created",
        subject: id,
        details: JSON.stringify({ name: options.name, expiresAt, maxUses: options.maxUses }),
      })
      .run();
  });
  return { id, secret, expiresAt, maxUses: options.maxUses };
}

/**
 * Checks a presented token and counts one use, atomically: two agents racing for the
 * last use of a token cannot both get it.
 */
export function redeemToken(db: Store, id: string, secret: string, now: number): TokenRow {
  type Refusal = { code: "token_unknown" | "token_revoked" | "token_expired" | "token_used_up"; message: string };
  const outcome = db.transaction((tx): TokenRow | Refusal => {
    const token = tx.select().from(tokens).where(eq(tokens.id, id)).get();
    const presented = Buffer.from(hash(secret), "hex");
    if (!token || !timingSafeEqual(presented, Buffer.from(token.secretHash, "hex"))) {
      return {
        code: "token_unknown",
        message: "This invite's token is not known to the coordinator (wrong mesh, or altered); ask for a new invite.",
      };
    }
    if (token.revokedAt !== null) return { code: "token_revoked", message: `This invite's token ${id} was revoked; ask for a new invite.` };
    if (token.expiresAt <= now) {
      return {
        code: "token_expired",
        message: `This invite's token ${id} expired ${new Date(token.expiresAt).toISOString()}; ask for a new invite.`,
      };
    }
    const used = tx
      .update(tokens)
      .set({ uses: sql`${tokens.uses} + 1` })
      .where(and(eq(tokens.id, id), lt(tokens.uses, tokens.maxUses), isNull(tokens.revokedAt), gt(tokens.expiresAt, now)))
      .run();
    if (used.changes === 0)
      return {
        code: "token_used_up",
        message: `This invite's token ${id} has been used its ${token.maxUses} time(s); ask for a new invite.`,
      };
    tx.insert(auditLog)
      .values({ time: now, action: "token.used", subject: id, details: JSON.stringify({ uses: token.uses + 1, maxUses: token.maxUses }) })
      .run();
    return { ...token, uses: token.uses + 1 };
  });
  // The caller records the refusal (enrollment audits it with the join it refused).
  if ("code" in outcome) throw new CoralError(outcome.code, outcome.message);
  return outcome;
}

export function revokeToken(db: Store, id: string, now: number): void {
  const result = db
    .update(tokens)
    .set({ revokedAt: now })
    .where(and(eq(tokens.id, id), isNull(tokens.revokedAt)))
    .run();
  if (result.changes === 0) {
    const exists = db.select({ id: tokens.id }).from(tokens).where(eq(tokens.id, id)).get();
    throw new CoralError("token_unknown", exists ? `Token ${id} is already revoked.` : `No token ${id}; \`coral token list\` shows them.`);
  }
  db.insert(auditLog).values({ time: now, action: "token.revoked", subject: id }).run();
}

export type TokenState = "active" | "expired" | "used_up" | "revoked";

export function tokenState(token: TokenRow, now: number): TokenState {
  if (token.revokedAt !== null) return "revoked";
  if (token.expiresAt <= now) return "expired";
  if (token.uses >= token.maxUses) return "used_up";
  return "active";
}

export function listTokens(db: Store): TokenRow[] {
  return db.select().from(tokens).orderBy(desc(tokens.createdAt)).all();
}
