import { describe, expect, it } from "vitest";
import { expectError, freshAddress, newMesh, register, send } from "./helpers.js";

// Limits as configured in the root wrangler.toml.
const PER_CLIENT = 120;
const PER_MESH = 600;
const PERIOD_MS = 10_000;

/**
 * The binding counts in fixed windows (floor(now / period)). A test that straddles
 * two windows would see its count reset halfway, so start with enough of one left.
 */
async function startOfFreshWindow(needMs = 5_000): Promise<void> {
  const left = PERIOD_MS - (Date.now() % PERIOD_MS);
  if (left < needMs) await new Promise((resolve) => setTimeout(resolve, left + 50));
}

describe("rate limits", () => {
  it("limits one client address, answering 429 with Retry-After, and leaves other clients alone", async () => {
    const address = freshAddress();
    await startOfFreshWindow();
    for (let i = 0; i < PER_CLIENT; i++) {
      const sent = await send("GET", "/v1/health", { address });
      expect(sent.response.status).toBe(200);
    }
    const limited = await send("GET", "/v1/health", { address });
    await expectError(limited, 429, "rate_limited");
    expect(Number(limited.response.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await send("GET", "/v1/health", { address: freshAddress() })).response.status).toBe(200);
  }, 20_000);

  it("limits one mesh across many client addresses, and leaves other meshes alone", async () => {
    const mesh = await newMesh();
    const other = await newMesh();
    await startOfFreshWindow();
    await register(mesh);
    await register(other);
    // Every request from a new address, so only the per-mesh limit can apply.
    const statuses: number[] = [];
    for (let i = 0; i < PER_MESH; i++) {
      statuses.push((await send("GET", `/v1/meshes/${mesh.meshId}/coordinator`, { address: freshAddress() })).response.status);
    }
    // The registration above used one request of this mesh's budget.
    expect(statuses.filter((s) => s === 200)).toHaveLength(PER_MESH - 1);
    expect(statuses.filter((s) => s === 429)).toHaveLength(1);
    expect((await send("GET", `/v1/meshes/${other.meshId}/coordinator`)).response.status).toBe(200);
  }, 30_000);
});
