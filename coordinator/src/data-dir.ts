/**
 * The coordinator's data directory: one coordinator at a time, and `api.json`, through which
 * the CLI finds the coordinator that runs with it.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoralError } from "@coral-mesh/sdk-proto";

export const API_FILE = "api.json";
export const STORE_FILE = "coral.db";

/** What `api.json` in the data directory holds: how the CLI finds this coordinator. */
export interface ApiFile {
  url: string;
  pid: number;
  meshId: string;
  startedAt: number;
  token?: string;
}

export function ensureDataDir(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
}

/** One coordinator per data directory: a live pid in `api.json` means another one runs. */
export function refuseSecondInstance(dataDir: string): void {
  const existing = readApiFile(dataDir);
  if (existing && existing.pid !== process.pid && isAlive(existing.pid)) {
    throw new CoralError(
      "coordinator_running",
      `A coordinator (pid ${existing.pid}) already runs with ${dataDir}; stop it first, or use another --data-dir.`,
    );
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function readApiFile(dataDir: string): ApiFile | undefined {
  try {
    return JSON.parse(readFileSync(join(dataDir, API_FILE), "utf8")) as ApiFile;
  } catch {
    return undefined;
  }
}

export function writeApiFile(dataDir: string, content: ApiFile): void {
  const path = join(dataDir, API_FILE);
  rmSync(path, { force: true });
  // It may hold the API token: its owner only.
  writeFileSync(path, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600, flag: "wx" });
}

export function removeApiFile(dataDir: string): void {
  rmSync(join(dataDir, API_FILE), { force: true });
}
