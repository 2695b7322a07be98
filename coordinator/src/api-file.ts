/**
 * `api.json` in the data directory: how the CLI finds a running coordinator. Kept apart from
 * the coordinator itself, so that commands that only read it load none of the daemon.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const API_FILE = "api.json";

/** What `api.json` in the data directory holds: how the CLI finds this coordinator. */
export interface ApiFile {
  url: string;
  pid: number;
  meshId: string;
  startedAt: number;
  token?: string;
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
