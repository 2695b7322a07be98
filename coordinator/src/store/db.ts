import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { type BetterSQLite3Database, drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { convertLegacySamples } from "./legacy.js";

export type Store = BetterSQLite3Database<Record<string, never>> & { $client: Database.Database };

/** coordinator/migrations, found from here whether this runs from src/ or from the bundle in dist/. */
function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "migrations", "meta", "_journal.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("coral: the store's migrations are missing from this installation");
    dir = parent;
  }
  return join(dir, "migrations");
}

/** Opens (creating if needed) the store at `path`, in WAL mode, with every migration applied. */
export function openStore(path: string): Store {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const fresh = !existsSync(path);
  const sqlite = new Database(path);
  // The store holds token hashes and the audit log: readable by its owner only.
  if (fresh) chmodSync(path, 0o600);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma("busy_timeout = 5000");
  const db = drizzle(sqlite) as Store;
  migrate(db, { migrationsFolder: migrationsFolder() });
  convertLegacySamples(sqlite);
  return db;
}

/** Opens the store at `path` to read only, changing nothing (no migration): for a reader beside the running coordinator. */
export function openStoreReadOnly(path: string): Store {
  const sqlite = new Database(path, { readonly: true, fileMustExist: true });
  sqlite.pragma("busy_timeout = 5000");
  return drizzle(sqlite) as Store;
}
