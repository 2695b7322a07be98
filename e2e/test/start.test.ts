/**
 * `npm start` as the README runs it: a whole mesh on this machine, ending with
 * `coral status`; then Ctrl-C (SIGINT to its process group, as a terminal sends it), after
 * which nothing it made is left: no namespace, no interface, no process.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { labSkipReason, missingForLab } from "@coral-mesh/wireguard/testing";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const skip = missingForLab() ? labSkipReason("npm start with namespaces") !== null : false;

async function npmStart(env: Record<string, string> = {}): Promise<{ output: () => string; child: ChildProcess }> {
  const child = spawn("npm", ["start"], { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const kill = () => {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {}
  };
  process.once("exit", kill);
  child.once("exit", () => process.off("exit", kill));
  const deadline = Date.now() + 150_000;
  while (!output.includes("Ctrl-C stops everything.")) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { output: () => output, child };
}

/** Ctrl-C, as a terminal sends it: SIGINT to the whole process group. */
async function interrupt(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  process.kill(-(child.pid as number), "SIGINT");
  return exited;
}

/**
 * Runs the `coral ... token create` that npm start printed, pasted as it is into a shell in
 * another directory; returns what it printed. No other `token create` hint may be printed.
 */
function pasteTokenCreate(output: string): string {
  const hints = output.split("\n").filter((line) => line.includes("token create"));
  expect(hints, output).toHaveLength(1);
  const line = (hints[0] as string).trim();
  const result = spawnSync("sh", ["-c", line], { cwd: "/", encoding: "utf8" });
  expect(result.status, `${line}\n${result.stderr}`).toBe(0);
  return result.stdout;
}

const running = (pattern: string) => {
  try {
    return execFileSync("pgrep", ["-af", pattern]).toString().trim();
  } catch {
    return "";
  }
};

describe("npm start", () => {
  it.skipIf(skip)(
    "with root and WireGuard: namespaces and a tunnel, coral status, and Ctrl-C leaves nothing",
    async () => {
      const { output, child } = await npmStart();
      const prefix = /namespaces (c[0-9a-f]{6})a /.exec(output())?.[1];
      expect(prefix, output()).toBeDefined();
      expect(output()).toMatch(/\[4\/5\] agent "local" joined: tunnel up through 192\.0\.2\.1:51820/);
      expect(output()).toMatch(/local\s+100\.64\.0\.2\s+healthy\s+.*direct/);
      expect(execFileSync("ip", ["netns", "list"]).toString()).toContain(`${prefix}b`);
      expect(pasteTokenCreate(output())).toMatch(/^\s+coral2_\S+$/m);

      await interrupt(child);
      expect(output()).toMatch(/stopped; nothing left behind\.\n$/);
      expect(execFileSync("ip", ["netns", "list"]).toString()).not.toContain(prefix);
      expect(running(`wireguard-go -f ${prefix}`)).toBe("");
      // wireguard-go removes its socket when stopped in order; one killed, or cut off by its
      // namespace going first, leaves it behind.
      const sockets = existsSync("/var/run/wireguard") ? readdirSync("/var/run/wireguard") : [];
      expect(sockets.filter((name) => name.startsWith(prefix as string))).toEqual([]);
      expect(running("scripts/start.ts")).toBe("");
    },
    240_000,
  );

  it("without them: on loopback, said in one line, and Ctrl-C leaves nothing", async () => {
    const { output, child } = await npmStart({ CORAL_START_LOOPBACK: "1" });
    expect(output()).toMatch(/running the agent and the coordinator on loopback, without one\./);
    expect(output()).toMatch(/local\s+\S+\s+healthy\s+.*loopback/);
    const dataDir = /--data-dir (\/\S+\/coordinator)/.exec(output())?.[1] as string;
    expect(dataDir).toBeDefined();
    expect(pasteTokenCreate(output())).toMatch(/^\s+coral2_\S+$/m);

    await interrupt(child);
    expect(output()).toMatch(/stopped; nothing left behind\.\n$/);
    expect(running(dataDir)).toBe("");
    expect(running("scripts/start.ts")).toBe("");
  }, 240_000);
});
