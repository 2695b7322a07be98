import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadOrCreateIdentity, SIGNING_KEY_FILE, WIREGUARD_KEY_FILE } from "../src/identity.js";

const dirs: string[] = [];
const dataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "coral-identity-"));
  dirs.push(dir);
  return join(dir, "data");
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("the coordinator identity", () => {
  it("is created once, in 0600 files in a 0700 directory, and the mesh id never changes", async () => {
    const dir = dataDir();
    const first = await loadOrCreateIdentity(dir);
    expect(first.created).toBe(true);
    expect(first.identity.meshId).toMatch(/^[a-z2-7]{32}$/);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const file of [SIGNING_KEY_FILE, WIREGUARD_KEY_FILE]) expect(statSync(join(dir, file)).mode & 0o777).toBe(0o600);
    const again = await loadOrCreateIdentity(dir);
    expect(again.created).toBe(false);
    expect(again.identity.meshId).toBe(first.identity.meshId);
    expect(again.identity.wireguard).toEqual(first.identity.wireguard);
  });

  it("refuses a key file others can read, saying how to fix it", async () => {
    const dir = dataDir();
    await loadOrCreateIdentity(dir);
    chmodSync(join(dir, SIGNING_KEY_FILE), 0o644);
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({
      code: "key_permissions",
      message: expect.stringContaining("chmod 600"),
    });
  });

  it("refuses a damaged key file rather than silently making a new mesh", async () => {
    const dir = dataDir();
    const { identity } = await loadOrCreateIdentity(dir);
    writeFileSync(join(dir, SIGNING_KEY_FILE), "garbage\n", { mode: 0o600 });
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ code: "key_invalid" });
    expect(readFileSync(join(dir, SIGNING_KEY_FILE), "utf8")).toBe("garbage\n");
    expect(identity.meshId).toBeTruthy();
  });
});
