// The drizzle schema and the checked-in migrations, on better-sqlite3 instead of D1:
// what a self-hosted discovery (a Node process with a SQLite file) will run on.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { and, eq, gt, lte, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { afterEach, describe, expect, it } from "vitest";
import { joins, type MeshRow, meshes } from "../src/db/schema.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function open() {
  const dir = mkdtempSync(join(tmpdir(), "coral-schema-"));
  dirs.push(dir);
  const sqlite = new Database(join(dir, "discovery.db"));
  sqlite.pragma("journal_mode = WAL");
  const db = drizzle(sqlite);
  migrate(db, { migrationsFolder: new URL("../migrations", import.meta.url).pathname });
  return { sqlite, db };
}

const mesh = (overrides: Partial<MeshRow> = {}): MeshRow => ({
  meshId: "kzdvvj2umnduyauf35o36k6kw462mujv",
  signingKey: "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
  body: "{}",
  registrationHash: "h1",
  signedAt: 1_000,
  nonce: "AAAAAAAAAAAAAAAAAAAAAA",
  signature: "sig",
  observedAddress: "203.0.113.7",
  createdAt: 1_000,
  updatedAt: 1_000,
  expiresAt: 10_000,
  ...overrides,
});

describe("the discovery schema on better-sqlite3", () => {
  it("applies the checked-in migrations to a SQLite file", () => {
    const { sqlite } = open();
    const tables = sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '%sqlite%' ORDER BY name").all();
    expect(tables.map((t) => (t as { name: string }).name)).toEqual(["__drizzle_migrations", "joins", "meshes", "refusals"]);
  });

  it("keeps timestamps monotonic in the same upsert the Worker uses", () => {
    const { db } = open();
    const upsert = (row: MeshRow) => {
      const { meshId: _id, createdAt: _created, ...update } = row;
      return db
        .insert(meshes)
        .values(row)
        .onConflictDoUpdate({ target: meshes.meshId, set: update, setWhere: sql`${meshes.signedAt} < excluded.signed_at` })
        .run();
    };
    expect(upsert(mesh()).changes).toBe(1);
    expect(upsert(mesh({ signedAt: 2_000, registrationHash: "h2" })).changes).toBe(1);
    expect(upsert(mesh({ signedAt: 1_500, registrationHash: "old" })).changes).toBe(0);
    expect(db.select().from(meshes).get()?.registrationHash).toBe("h2");
  });

  it("hides and deletes expired rows through the expires_at index", () => {
    const { sqlite, db } = open();
    db.insert(meshes)
      .values([mesh(), mesh({ meshId: "a".repeat(32), expiresAt: 500 })])
      .run();
    db.insert(joins)
      .values({ joinId: "j".repeat(22), meshId: mesh().meshId, wireguardKey: "k", sealed: "s", createdAt: 1, expiresAt: 500 })
      .run();
    const now = 1_000;
    expect(db.select().from(meshes).where(gt(meshes.expiresAt, now)).all()).toHaveLength(1);
    const plan = sqlite.prepare("EXPLAIN QUERY PLAN DELETE FROM meshes WHERE expires_at <= ?").all(now) as Array<{ detail: string }>;
    expect(plan.map((p) => p.detail).join()).toMatch(/USING (COVERING )?INDEX meshes_expires_at/);
    expect(db.delete(meshes).where(lte(meshes.expiresAt, now)).run().changes).toBe(1);
    expect(
      db
        .delete(joins)
        .where(and(lte(joins.expiresAt, now), eq(joins.meshId, mesh().meshId)))
        .run().changes,
    ).toBe(1);
  });
});
