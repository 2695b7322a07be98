/**
 * Every query the Worker makes. Reads filter on `expires_at > now`, so an expired
 * row is invisible before the cleanup cron deletes it.
 */
import { and, asc, count, eq, gt, isNotNull, isNull, lte, sql } from "drizzle-orm";
import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import { type JoinRow, joins, type MeshRow, meshes, refusals } from "./schema.js";

export type Db = DrizzleD1Database<Record<string, never>> & { $client: D1Database };

export function openDb(d1: D1Database): Db {
  return drizzle(d1);
}

export async function getLiveMesh(db: Db, meshId: string, now: number): Promise<MeshRow | undefined> {
  return db
    .select()
    .from(meshes)
    .where(and(eq(meshes.meshId, meshId), gt(meshes.expiresAt, now)))
    .get();
}

export type PutMeshOutcome =
  | { kind: "written"; row: MeshRow; created: boolean; rowsWritten: number }
  | { kind: "unchanged"; row: MeshRow }
  | { kind: "superseded"; row: MeshRow };

/**
 * Writes a coordinator record in one D1 round trip (an upsert and a read in one
 * batch). The upsert applies only with a strictly newer signed timestamp, so a
 * replayed or delayed request can never roll a record back, and only when
 * something changed or the record nears expiry, so an unchanged refresh costs
 * no write.
 */
export async function putMesh(db: Db, row: MeshRow, now: number, rewriteBelowMs: number): Promise<PutMeshOutcome> {
  const { meshId: _key, createdAt: _created, ...update } = row;
  const [written, [stored]] = await db.batch([
    db
      .insert(meshes)
      .values(row)
      .onConflictDoUpdate({
        target: meshes.meshId,
        set: update,
        setWhere: sql`${meshes.signedAt} < excluded.signed_at AND (
          ${meshes.expiresAt} - ${now} <= ${rewriteBelowMs}
          OR ${meshes.registrationHash} IS NOT excluded.registration_hash
          OR ${meshes.observedAddress} IS NOT excluded.observed_address)`,
      }),
    db.select().from(meshes).where(eq(meshes.meshId, row.meshId)),
  ]);
  if (!stored) throw new Error(`mesh ${row.meshId} missing right after its upsert`);
  if (written.meta.changes > 0)
    return { kind: "written", row: stored, created: stored.createdAt === row.createdAt, rowsWritten: written.meta.rows_written ?? 0 };
  return stored.signedAt >= row.signedAt ? { kind: "superseded", row: stored } : { kind: "unchanged", row: stored };
}

export type NewJoin = Omit<JoinRow, "seq" | "answer" | "answerSignedAt" | "answeredAt">;

export type InsertJoinOutcome =
  | { kind: "created"; rowsWritten: number }
  | { kind: "mesh_not_found" }
  | { kind: "queue_full" }
  | { kind: "ticket_busy" };

export interface JoinQuota {
  /** Pending requests the mesh may have at once. */
  perMesh: number;
  /** Pending requests one ticket (`join.ticketId`) may have at once. */
  perTicket: number;
}

/** Inserts a join request if its mesh is live and both its queue and its ticket's share of it have room, in one round trip. */
export async function insertJoin(db: Db, join: NewJoin, quota: JoinQuota): Promise<InsertJoinOutcome> {
  // Raw SQL: an INSERT ... SELECT guarded by the mesh's state has no query-builder form.
  const live = "EXISTS (SELECT 1 FROM meshes WHERE mesh_id = ?1 AND expires_at > ?2)";
  const pending = "(SELECT count(*) FROM joins WHERE mesh_id = ?1 AND answer IS NULL AND expires_at > ?2)";
  const ticketPending = (ticket: string) =>
    `(SELECT count(*) FROM joins WHERE mesh_id = ?1 AND ticket_id = ${ticket} AND answer IS NULL AND expires_at > ?2)`;
  const d1 = db.$client;
  const [status, inserted] = await d1.batch<{ live: number; pending: number; ticketPending: number }>([
    d1
      .prepare(`SELECT ${live} AS live, ${pending} AS pending, ${ticketPending("?3")} AS ticketPending`)
      .bind(join.meshId, join.createdAt, join.ticketId),
    d1
      .prepare(
        `INSERT INTO joins (mesh_id, created_at, join_id, wireguard_key, sealed, observed_address, expires_at, ticket_id)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9 WHERE ${live} AND ${pending} < ?8 AND ${ticketPending("?9")} < ?10`,
      )
      .bind(
        join.meshId,
        join.createdAt,
        join.joinId,
        join.wireguardKey,
        join.sealed,
        join.observedAddress,
        join.expiresAt,
        quota.perMesh,
        join.ticketId,
        quota.perTicket,
      ),
  ]);
  if (inserted && inserted.meta.changes > 0) return { kind: "created", rowsWritten: inserted.meta.rows_written ?? 0 };
  const row = status?.results[0];
  if (!row?.live) return { kind: "mesh_not_found" };
  return row.ticketPending >= quota.perTicket && row.pending < quota.perMesh ? { kind: "ticket_busy" } : { kind: "queue_full" };
}

/** Pending join requests after a cursor, and whether the mesh is live, in one round trip. */
export async function listPendingJoins(
  db: Db,
  meshId: string,
  after: number,
  now: number,
  limit: number,
): Promise<{ meshLive: boolean; joins: JoinRow[] }> {
  const [mesh, rows] = await db.batch([
    db
      .select({ meshId: meshes.meshId })
      .from(meshes)
      .where(and(eq(meshes.meshId, meshId), gt(meshes.expiresAt, now))),
    db
      .select()
      .from(joins)
      .where(and(eq(joins.meshId, meshId), gt(joins.seq, after), isNull(joins.answer), gt(joins.expiresAt, now)))
      .orderBy(asc(joins.seq))
      .limit(limit),
  ]);
  return { meshLive: mesh.length > 0, joins: rows };
}

export async function getLiveJoin(db: Db, meshId: string, joinId: string, now: number): Promise<JoinRow | undefined> {
  return db
    .select()
    .from(joins)
    .where(and(eq(joins.joinId, joinId), eq(joins.meshId, meshId), gt(joins.expiresAt, now)))
    .get();
}

/**
 * Sets a join's answer if it has none yet, and reads the join back, in one round
 * trip. `applied` says whether this call's answer is the one stored.
 */
export async function answerJoin(
  db: Db,
  meshId: string,
  joinId: string,
  answer: { sealed: string; signedAt: number; answeredAt: number; expiresAt: number },
): Promise<{ applied: boolean; join: JoinRow | undefined; rowsWritten: number }> {
  const now = answer.answeredAt;
  const [updated, [join]] = await db.batch([
    db
      .update(joins)
      .set({ answer: answer.sealed, answerSignedAt: answer.signedAt, answeredAt: answer.answeredAt, expiresAt: answer.expiresAt })
      .where(and(eq(joins.joinId, joinId), eq(joins.meshId, meshId), isNull(joins.answer), gt(joins.expiresAt, now))),
    db
      .select()
      .from(joins)
      .where(and(eq(joins.joinId, joinId), eq(joins.meshId, meshId), gt(joins.expiresAt, now))),
  ]);
  return { applied: updated.meta.changes > 0, join, rowsWritten: updated.meta.rows_written ?? 0 };
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
    db
      .select({ n: count() })
      .from(joins)
      .where(and(isNull(joins.answer), gt(joins.expiresAt, now))),
    db
      .select({ n: count() })
      .from(joins)
      .where(and(isNotNull(joins.answer), gt(joins.expiresAt, now))),
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
