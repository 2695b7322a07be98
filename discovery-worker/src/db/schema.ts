/**
 * Discovery's tables, written with drizzle's sqlite-core only so the same module
 * runs on D1 (the Worker) and on better-sqlite3 (a self-hosted discovery).
 * Every row expires: `expires_at` is indexed so the cleanup cron deletes through it.
 * All times are Unix milliseconds.
 */
import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

export const meshes = sqliteTable(
  "meshes",
  {
    meshId: text("mesh_id").primaryKey(),
    /** Ed25519 public key (base64url) that the mesh id is the fingerprint of. */
    signingKey: text("signing_key").notNull(),
    /** The registration body exactly as signed, so readers can re-verify it. */
    body: text("body").notNull(),
    /** SHA-256 of the registration in canonical JSON: an unchanged refresh is detected in SQL. */
    registrationHash: text("registration_hash").notNull(),
    /** Timestamp, nonce and signature of the request that wrote `body`. */
    signedAt: integer("signed_at").notNull(),
    nonce: text("nonce").notNull(),
    signature: text("signature").notNull(),
    observedAddress: text("observed_address"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [index("meshes_expires_at").on(t.expiresAt)],
);

export const joins = sqliteTable(
  "joins",
  {
    /** AUTOINCREMENT: a sequence number is never reused, so cursors stay valid after deletes. */
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    joinId: text("join_id").notNull().unique(),
    meshId: text("mesh_id").notNull(),
    wireguardKey: text("wireguard_key").notNull(),
    sealed: text("sealed").notNull(),
    /** The token id of the join ticket it came with, to count pending joins per ticket (null before tickets). */
    ticketId: text("ticket_id"),
    observedAddress: text("observed_address"),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    answer: text("answer"),
    answerSignedAt: integer("answer_signed_at"),
    answeredAt: integer("answered_at"),
  },
  (t) => [index("joins_mesh_seq").on(t.meshId, t.seq), index("joins_expires_at").on(t.expiresAt)],
);

/** Refusals by error code, summed across isolates by periodic flushes. */
export const refusals = sqliteTable("refusals", {
  code: text("code").primaryKey(),
  count: integer("count").notNull(),
  lastAt: integer("last_at").notNull(),
});

export type MeshRow = typeof meshes.$inferSelect;
export type JoinRow = typeof joins.$inferSelect;
