import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index.js";
import { createJoin, newMesh, register, snapshot } from "./helpers.js";

async function runCron(): Promise<void> {
  const controller = createScheduledController({ scheduledTime: Date.now(), cron: "*/15 * * * *" });
  await worker.scheduled(controller, env);
}

describe("scheduled cleanup", () => {
  it("deletes expired records and join requests and keeps live ones", async () => {
    const live = await newMesh();
    const expired = await newMesh();
    await register(live);
    await register(expired);
    const liveJoin = await createJoin(live);
    const expiredJoin = await createJoin(live);
    const past = Date.now() - 1;
    await env.DB.prepare("UPDATE meshes SET expires_at = ? WHERE mesh_id = ?").bind(past, expired.meshId).run();
    await env.DB.prepare("UPDATE joins SET expires_at = ? WHERE join_id = ?").bind(past, expiredJoin).run();

    await runCron();

    expect(await snapshot(expired.meshId)).toBe(JSON.stringify({ mesh: [], joins: [] }));
    const kept = JSON.parse(await snapshot(live.meshId)) as { mesh: unknown[]; joins: Array<{ join_id: string }> };
    expect(kept.mesh).toHaveLength(1);
    expect(kept.joins.map((j) => j.join_id)).toEqual([liveJoin]);
  });

  it("finds expired rows through the expires_at indexes, not a table scan", async () => {
    for (const [table, indexName] of [
      ["meshes", "meshes_expires_at"],
      ["joins", "joins_expires_at"],
    ]) {
      const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN DELETE FROM ${table} WHERE expires_at <= ?`)
        .bind(Date.now())
        .all<{ detail: string }>();
      const details = plan.results.map((row) => row.detail).join("\n");
      expect(details).toMatch(new RegExp(`USING (COVERING )?INDEX ${indexName}\\b`));
    }
  });
});
