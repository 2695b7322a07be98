/**
 * The agent's data directory: one agent at a time (`agent.pid`), and its mesh membership,
 * joined once with an invite and kept for every later start.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoralError } from "@coral-mesh/sdk-proto";
import type { WireGuardKeyPair } from "@coral-mesh/wireguard";
import packageJson from "../package.json" with { type: "json" };
import { defaultAgentName, freeUdpPort, joinMesh, loadMeshState, type MeshState, saveMeshState } from "./join.js";

const PID_FILE = "agent.pid";

/** One agent per data directory: a live pid in `agent.pid` means another one runs. */
export function claimDataDir(dataDir: string): void {
  const path = join(dataDir, PID_FILE);
  try {
    const pid = Number(readFileSync(path, "utf8"));
    if (pid !== process.pid && isAlive(pid)) {
      throw new CoralError(
        "agent_running",
        `An agent (pid ${pid}) already runs with ${dataDir}; stop it first, or use another --data-dir.`,
      );
    }
  } catch (error) {
    if (error instanceof CoralError) throw error;
  }
  writeFileSync(path, String(process.pid), { mode: 0o600 });
}

export function releaseDataDir(dataDir: string): void {
  rmSync(join(dataDir, PID_FILE), { force: true });
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The mesh this agent is a member of: the one it joined before, or the invite's, joined now. */
export async function loadOrJoin(options: {
  dataDir: string;
  invite: string | undefined;
  name: string | undefined;
  keys: WireGuardKeyPair;
  log: (line: string) => void;
}): Promise<MeshState> {
  const { dataDir, invite, log } = options;
  const mesh = loadMeshState(dataDir);
  if (mesh && invite) log(`already a member of mesh ${mesh.meshId} as ${mesh.name}; --join is not needed again`);
  if (mesh) return mesh;
  if (!invite) {
    throw new CoralError("invite_malformed", `This agent has not joined a mesh yet (nothing in ${dataDir}): start it with --join INVITE.`);
  }
  const joined = await joinMesh({
    invite,
    name: options.name ?? defaultAgentName(),
    keys: options.keys,
    agentVersion: packageJson.version,
    listenPort: await freeUdpPort(),
    progress: log,
  });
  saveMeshState(dataDir, joined);
  return joined;
}
