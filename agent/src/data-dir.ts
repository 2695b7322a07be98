/**
 * The agent's data directory: one agent at a time (`agent.pid`), and its mesh membership,
 * joined once with an invite and kept for every later start.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoralError, decodeInvite } from "@coral-mesh/sdk-proto";
import type { WireGuardKeyPair } from "@coral-mesh/wireguard";
import packageJson from "../package.json" with { type: "json" };
import { defaultAgentName, freeUdpPort, joinMesh, loadMeshState, MESH_FILE, type MeshState, saveMeshState } from "./join.js";

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
  if (mesh && invite) {
    // The same invite again (a unit that always passes it): the membership stands. Another
    // invite replaces it (after `coral agents remove`, or to move to another mesh), with the
    // same key; only once the new join succeeded is the old membership set aside.
    const { tokenId, meshId } = await decodeInvite(invite);
    if (tokenId === mesh.tokenId) {
      log(`already a member of mesh ${mesh.meshId} as ${mesh.name}; --join is not needed again`);
      return mesh;
    }
    log(
      `joining mesh ${meshId} with the new invite; this agent's membership of mesh ${mesh.meshId} as ${mesh.name} stays as it is unless the join succeeds`,
    );
    const joined = await joinWith(options, options.name ?? mesh.name, mesh.listenPort);
    copyFileSync(join(dataDir, MESH_FILE), join(dataDir, PREVIOUS_MESH_FILE));
    saveMeshState(dataDir, joined);
    log(`joined: the membership it replaces is kept in ${join(dataDir, PREVIOUS_MESH_FILE)}`);
    return joined;
  }
  if (mesh) return mesh;
  if (!invite) {
    throw new CoralError("invite_malformed", `This agent has not joined a mesh yet (nothing in ${dataDir}): start it with --join INVITE.`);
  }
  const joined = await joinWith(options, options.name ?? defaultAgentName(), undefined);
  saveMeshState(dataDir, joined);
  return joined;
}

/** The membership a new invite replaced, for reference. */
export const PREVIOUS_MESH_FILE = "mesh.previous.json";

async function joinWith(
  options: { invite?: string | undefined; keys: WireGuardKeyPair; log: (line: string) => void },
  name: string,
  listenPort: number | undefined,
): Promise<MeshState> {
  return joinMesh({
    invite: options.invite as string,
    name,
    keys: options.keys,
    agentVersion: packageJson.version,
    listenPort: listenPort ?? (await freeUdpPort()),
    progress: options.log,
  });
}
