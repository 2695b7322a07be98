/**
 * The collector in docs/plugins.md, taken from the page as written: it must load, pass the
 * lifecycle suite, and do what the page says against a queue API on loopback.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { checkPlugin, type Plugin } from "../src/index.js";
import { createTestContext, lifecycleSuite, MemoryState, runCollect } from "../src/testing.js";

const here = dirname(fileURLToPath(import.meta.url));
const page = readFileSync(resolve(here, "../../docs/plugins.md"), "utf8");
const source = /```js\n(\/\/ my-collector\.js\n[\s\S]*?)```/.exec(page)?.[1];
if (!source) throw new Error("docs/plugins.md no longer has the my-collector.js example");

let depth = 1500;
const queueApi = createServer((request, response) => {
  response.setHeader("content-type", "application/json");
  response.end(JSON.stringify(request.url === "/queues/jobs" ? { depth } : { error: "no such queue" }));
});
await new Promise<void>((r) => queueApi.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${(queueApi.address() as AddressInfo).port}`;

// Inside the package, so that its imports resolve as they would in a user's project.
const dir = join(here, ".docs-example");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "my-collector.js"), source);
const plugin = (await import(join(dir, "my-collector.js"))).default as Plugin;

afterAll(() => {
  queueApi.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the collector in docs/plugins.md", () => {
  it("is a valid plugin that reports the depth, and a backlog once when it crosses 1,000", async () => {
    checkPlugin(plugin);
    const state = new MemoryState();
    const first = await runCollect(plugin, { options: { url }, state });
    expect(first.metrics).toEqual([expect.objectContaining({ name: "queue.depth", value: 1500, labels: { queue: "jobs" } })]);
    expect(first.events).toEqual([
      expect.objectContaining({
        kind: "queue.backlog",
        subject: { kind: "service", id: "queue:jobs" },
        evidence: { previous: 0, depth: 1500 },
      }),
    ]);
    depth = 1600;
    expect((await runCollect(plugin, { options: { url }, state })).events).toEqual([]);
    depth = 1500;
  });

  it("refuses options that are not what its schema says", async () => {
    await expect(runCollect(plugin, { options: { url: "not a url" } })).rejects.toThrow(/plugin "queue-depth" options: url must be a URL/);
  });
});

lifecycleSuite(plugin, { options: { url } });

describe("createTestContext as docs/plugins.md shows its signature", () => {
  const signature = /```ts\n(createTestContext\([\s\S]*?)```/.exec(page)?.[1] ?? "";
  const fields = (block: string) => [...block.matchAll(/^\s+(\w+)\??:/gm)].map((m) => m[1]);

  it("is on the page, with every option and every field of what it returns", () => {
    const [init, returned] = signature.split("}): PluginContext");
    expect(fields(init ?? "")).toEqual(["options", "procRoot", "now", "state"]);
    expect(fields(returned ?? "")).toEqual(["emit", "state", "log"]);
  });

  it("does what the page says of each option", async () => {
    const state = new MemoryState();
    state.set("seen", 1);
    const ctx = createTestContext(plugin, { options: { url }, procRoot: "/fixture/proc", now: () => 42, state });
    expect([ctx.options, ctx.procRoot, ctx.clock.now(), ctx.state.get("seen"), ctx.signal.aborted]).toEqual([
      { url, queue: "jobs" },
      "/fixture/proc",
      42,
      1,
      false,
    ]);
    await plugin.collect?.(ctx as never);
    expect(ctx.emit.metrics).toEqual([expect.objectContaining({ name: "queue.depth" })]);
    ctx.log.warn("careful");
    expect(ctx.log.lines).toEqual(["warn: careful"]);
    expect(createTestContext(plugin, { options: { url } }).procRoot).toBe("/proc");
    expect(() => createTestContext(plugin, { options: { url: "not a url" } })).toThrow(/plugin "queue-depth" options: url must be a URL/);
  });
});
