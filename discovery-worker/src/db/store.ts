/**
 * Every query the Worker makes. Reads filter on `expires_at > now`, so an expired
 * row is invisible before the cleanup cron deletes it.
 */
import { and, asc, count, eq, gt, isNotNull, isNull, lte, sql } from "drizzle-orm";
import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import { type JoinRow, joins, type MeshRow, meshes, refusals } from "./schema.js";

export type Db = DrizzleD1Database<Record<string, never>>;

export function openDb(d1: D1Database): Db {
  return drizzle(d1);
}

/** D1 reports rows written per statement, index updates included. */
function written(result: D1Result): number {
  return result.meta.rows_written ?? 0;
}

export async function getLiveMesh(db: Db, meshId: string, now: number): Promise<MeshRow | undefined> {
  return db
    .select()
    .from(meshes)
    .where(and(eq(meshes.meshId, meshId), gt(meshes.expiresAt, now)))
    .get();
}

/** The mesh row whether live or expired (expired rows still pin the last signed timestamp). */
export async function getMesh(db: Db, meshId: string): Promise<MeshRow | undefined> {
  return db.select().from(meshes).where(eq(meshes.meshId, meshId)).get();
}

/**
 * Inserts or replaces a mesh record, but only with a strictly newer signed
 * timestamp: concurrent or replayed writes cannot roll a record back.
 */
export async function putMesh(db: Db, row: MeshRow): Promise<{ applied: boolean; rowsWritten: number }> {
  const { meshId: _key, createdAt: _created, ...update } = row;
  const result = await db
    .insert(meshes)
    .values(row)
    .onConflictDoUpdate({ target: meshes.meshId, set: update, setWhere: sql`${meshes.signedAt} < excluded.signed_at` })
    .run();
  return { applied: result.meta.changes > 0, rowsWritten: written(result) };
}

export async function countPendingJoins(db: Db, meshId: string, now: number): Promise<number> {
  const row = await db
    .select({ n: count() })
    .from(joins)
    .where(and(eq(joins.meshId, meshId), isNull(joins.answer), gt(joins.expiresAt, now)))
    .get();
  return row?.n ?? 0;
}

export type NewJoin = Omit<JoinRow, "seq" | "answer" | "answerSignedAt" | "answeredAt">;

export async function insertJoin(db: Db, join: NewJoin): Promise<number> {
  return written(await db.insert(joins).values(join).run());
}

export async function listPendingJoins(db: Db, meshId: string, after: number, now: number, limit: number): Promise<JoinRow[]> {
  return db
    .select()
    .from(joins)
    .where(and(eq(joins.meshId, meshId), gt(joins.seq, after), isNull(joins.answer), gt(joins.expiresAt, now)))
    .orderBy(asc(joins.seq))
    .limit(limit)
    .all();
}

export async function getLiveJoin(db: Db, meshId: string, joinId: string, now: number): Promise<JoinRow | undefined> {
  return db
    .select()
    .from(joins)
    .where(and(eq(joins.joinId, joinId), eq(joins.meshId, meshId), gt(joins.expiresAt, now)))
    .get();
}

/** Sets the answer once; false when another answer got there first. */
export async function answerJoin(
  db: Db,
  joinId: string,
  answer: { sealed: string; signedAt: number; answeredAt: number; expiresAt: number },
): Promise<{ applied: boolean; rowsWritten: number }> {
  const result = await db
    .update(joins)
    .set({ answer: answer.sealed, answerSignedAt: answer.signedAt, answeredAt: answer.answeredAt, expiresAt: answer.expiresAt })
    .where(and(eq(joins.joinId, joinId), isNull(joins.answer)))
    .run();
  return { applied: result.meta.changes > 0, rowsWritten: written(result) };
}

export interface StoreStats {
  meshes: number;
  liveRecords: number;
  pendingJoins: number;
  answeredJoins: number;
  refusals: Record<string, number>;
}

export async function readStats(db: Db, now: number): Promise<StoreStats> {
  const [meshCount, liveCount, pendingCount, answeredCount, refusalRows] = await db.batch([
    db.select({ n: count() }).from(meshes),
    db.select({ n: count() }).from(meshes).where(gt(meshes.expiresAt, now)),
    db.select({ n: count() }).from(joins).where(and(isNull(joins.answer), gt(joins.expiresAt, now))),
    db.select({ n: count() }).from(joins).where(and(isNotNull(joins.answer), gt(joins.expiresAt, now))),
    db.select().from(refusals).orderBy(asc(refusals.code)),
  ]);
  return {
    meshes: meshCount[0]?.n ?? 0,
    liveRecords: liveCount[0]?.n ?? 0,
    pendingJoins: pendingCount[0]?.n ?? 0,
    answeredJoins: answeredCount[0]?.n ?? 0,
    refusals: Object.fromEntries(refusalRows.map((row) => [row.code, row.count])),
  };
}

/** Adds refusal counts in one batch (one upsert per code). */
export async function addRefusals(db: Db, counts: Map<string, number>, now: number): Promise<void> {
  const statements = [...counts].map(([code, n]) =>
    db
      .insert(refusals)
      .values({ code, count: n, lastAt: now })
      .onConflictDoUpdate({ target: refusals.code, set: { count: sql`${refusals.count} + ${n}`, lastAt: now } }),
  );
  const [first, ...rest] = statements;
  if (first) await db.batch([first, ...rest]);
}

export async function deleteExpired(db: Db, now: number): Promise<{ meshes: number; joins: number }> {
  const [meshResult, joinResult] = await db.batch([
    db.delete(meshes).where(lte(meshes.expiresAt, now)),
    db.delete(joins).where(lte(joins.expiresAt, now)),
  ]);
  return { meshes: meshResult.meta.changes, joins: joinResult.meta.changes };
}
