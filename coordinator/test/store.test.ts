import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPair } from "@coral-mesh/wireguard";
import { afterEach, describe, expect, it } from "vitest";
import { applyRetention, DEFAULT_RETENTION } from "../src/coordinator.js";
import { allocateAddress, COORDINATOR_ADDRESS, intToIp, ipToInt, releaseAddress } from "../src/mesh/allocation.js";
import { createToken, listTokens, redeemToken, revokeToken, tokenState } from "../src/mesh/tokens.js";
import { openStore, type Store } from "../src/store/db.js";
import { packSamples } from "../src/store/frames.js";
import { auditLog, batches, events, metricFrames } from "../src/store/schema.js";

const dirs: string[] = [];
function freshStore(): { db: Store; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "coral-store-"));
  dirs.push(dir);
  const path = join(dir, "coral.db");
  return { db: openStore(path), path };
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("the coordinator store", () => {
  it("is a SQLite file in WAL mode, readable by its owner only, with the migrations applied", () => {
    const { db, path } = freshStore();
    expect(db.$client.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const tables = (
      db.$client.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>
    ).map((t) => t.name);
    expect(tables).toEqual(
      expect.arrayContaining([
        "agents",
        "allocations",
        "tokens",
        "services",
        "batches",
        "events",
        "metric_series",
        "metric_frames",
        "metric_rollups",
        "topology_edges",
        "topology_edge_hours",
        "audit_log",
      ]),
    );
  });

  it("keeps what it stored when opened again", () => {
    const { db, path } = freshStore();
    const token = createToken(db, { ttlMs: 60_000, maxUses: 1 }, 1_000);
    db.$client.close();
    expect(listTokens(openStore(path)).map((t) => t.id)).toEqual([token.id]);
  });
});

describe("mesh address allocation", () => {
  it("hands out the lowest free address above the coordinator's, stable per agent key", () => {
    const { db } = freshStore();
    const [a, b, c] = [generateKeyPair().publicKey, generateKeyPair().publicKey, generateKeyPair().publicKey];
    expect(COORDINATOR_ADDRESS).toBe("100.64.0.1");
    expect(allocateAddress(db, a, "a", 1)).toBe("100.64.0.2");
    expect(allocateAddress(db, b, "b", 2)).toBe("100.64.0.3");
    expect(allocateAddress(db, a, "a", 3)).toBe("100.64.0.2");
    expect(allocateAddress(db, c, "c", 4)).toBe("100.64.0.4");
  });

  it("reuses an address only after it was released", () => {
    const { db } = freshStore();
    const [a, b, c] = [generateKeyPair().publicKey, generateKeyPair().publicKey, generateKeyPair().publicKey];
    allocateAddress(db, a, "a", 1);
    allocateAddress(db, b, "b", 2);
    releaseAddress(db, a, 3);
    expect(allocateAddress(db, c, "c", 4)).toBe("100.64.0.2");
    // A released key that joins again gets a new address, not its old one back by accident.
    expect(allocateAddress(db, a, "a", 5)).toBe("100.64.0.4");
  });

  it("converts addresses to integers and back", () => {
    expect(intToIp(ipToInt("100.127.255.254"))).toBe("100.127.255.254");
    expect(ipToInt("100.64.0.1") - ipToInt("100.64.0.0")).toBe(1);
  });
});

describe("join tokens", () => {
  it("store only a hash of the secret, and count uses up to the limit", () => {
    const { db } = freshStore();
    const token = createToken(db, { ttlMs: 60_000, maxUses: 2, name: "laptops" }, 1_000);
    const stored = listTokens(db)[0];
    expect(stored?.secretHash).not.toContain(token.secret);
    expect(JSON.stringify(db.$client.prepare("SELECT * FROM tokens").all())).not.toContain(token.secret);
    expect(redeemToken(db, token.id, token.secret, 2_000).uses).toBe(1);
    expect(redeemToken(db, token.id, token.secret, 3_000).uses).toBe(2);
    expect(() => redeemToken(db, token.id, token.secret, 4_000)).toThrow(expect.objectContaining({ code: "token_used_up" }));
    expect(tokenState(listTokens(db)[0] as never, 4_000)).toBe("used_up");
  });

  it("refuse expired, revoked, unknown and wrong-secret tokens, each with its own code, spending no use", () => {
    const { db } = freshStore();
    const expiring = createToken(db, { ttlMs: 1_000, maxUses: 5 }, 1_000);
    expect(() => redeemToken(db, expiring.id, expiring.secret, 2_000)).toThrow(expect.objectContaining({ code: "token_expired" }));
    const revoked = createToken(db, { ttlMs: 60_000, maxUses: 5 }, 1_000);
    revokeToken(db, revoked.id, 1_500);
    expect(() => redeemToken(db, revoked.id, revoked.secret, 2_000)).toThrow(expect.objectContaining({ code: "token_revoked" }));
    expect(() => redeemToken(db, "nosuchtoken", "x", 2_000)).toThrow(expect.objectContaining({ code: "token_unknown" }));
    expect(() => redeemToken(db, revoked.id, "wrong-secret", 2_000)).toThrow(expect.objectContaining({ code: "token_unknown" }));
    expect(() => revokeToken(db, revoked.id, 3_000)).toThrow(/already revoked/);
    const actions = db
      .select()
      .from(auditLog)
      .all()
      .map((row) => row.action);
    expect(actions).toEqual(["token.created", "token.created", "token.revoked"]);
    expect(listTokens(db).map((t) => t.uses)).toEqual([0, 0]);
  });
});

describe("retention", () => {
  it("drops metric samples past their retention and old receipts, keeping each agent's latest sequence", async () => {
    const { db } = freshStore();
    const day = 86_400_000;
    const now = 100 * day;
    const frame = (time: number) => ({
      agentName: "web-1",
      startTime: time,
      endTime: time,
      samples: 1,
      data: packSamples([{ seriesId: 1, time, value: 1 }], time),
    });
    db.insert(metricFrames)
      .values([frame(now - 8 * day), frame(now - 6 * day), frame(now)])
      .run();
    db.insert(batches)
      .values([
        { agentName: "web-1", sequence: 1, receivedAt: now - 9 * day },
        { agentName: "web-1", sequence: 2, receivedAt: now - 8 * day },
        { agentName: "db-1", sequence: 7, receivedAt: now - 9 * day },
      ])
      .run();
    const event = (time: number, position: number) => ({
      agentName: "web-1",
      sequence: 1,
      position,
      kind: "process.started",
      time,
      subjectKind: "process",
      subjectId: "pid:1",
    });
    db.insert(events)
      .values([event(now - 31 * day, 0), event(now - 29 * day, 1)])
      .run();

    expect(await applyRetention(db, { ...DEFAULT_RETENTION, rawMs: 7 * day }, now)).toMatchObject({ frames: 1, events: 1 });
    expect(
      db
        .select()
        .from(metricFrames)
        .all()
        .map((s) => s.startTime),
    ).toEqual([now - 6 * day, now]);
    // The latest receipt of each agent stays: Register tells the agent where it stands.
    expect(
      db
        .select()
        .from(batches)
        .all()
        .map((b) => `${b.agentName}:${b.sequence}`)
        .sort(),
    ).toEqual(["db-1:7", "web-1:2"]);
    expect(
      db
        .select()
        .from(events)
        .all()
        .map((e) => e.time),
    ).toEqual([now - 29 * day]);
  });
});
