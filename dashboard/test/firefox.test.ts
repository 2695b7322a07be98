/**
 * The dashboard in Debian's Firefox ESR (driven over WebDriver BiDi by puppeteer-core, which
 * needs no patched browser), against a real coordinator seeded through its agent service: the
 * map draws every service and edge, a change turns its node red without a reload, the keyboard
 * moves through the services, and the timeline and service pages render.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserSkipReason, type RunningCoordinator, Seeder, smallMesh, startCoordinator } from "./harness.js";

const FIREFOX = process.env.CORAL_FIREFOX ?? "/usr/bin/firefox-esr";
const skipReason = existsSync(FIREFOX) ? browserSkipReason() : `no Firefox at ${FIREFOX} (apt-get install firefox-esr)`;
if (skipReason && process.env.CORAL_REQUIRE_ALL === "1") throw new Error(`the dashboard's Firefox tests cannot run: ${skipReason}`);

describe.skipIf(skipReason !== null)("the dashboard in Firefox", () => {
  let coordinator: RunningCoordinator;
  let seeder: Seeder;
  let browser: Browser;
  let profile: string;
  const mesh = smallMesh();

  beforeAll(async () => {
    profile = mkdtempSync(join(tmpdir(), "coral-firefox-"));
    [coordinator, browser] = await Promise.all([
      startCoordinator(),
      puppeteer.launch({ browser: "firefox", executablePath: FIREFOX, headless: true, userDataDir: profile, timeout: 120_000 }),
    ]);
    seeder = new Seeder(coordinator);
    seeder.addAgents(mesh.agents);
    await seeder.services(mesh.services);
    await seeder.edges(mesh.services, mesh.edges);
  }, 180_000);
  afterAll(async () => {
    seeder?.close();
    await browser?.close();
    await coordinator?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it("draws the map with every service and edge, turns a node red on a change without a reload, and moves by keyboard", async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    let loads = 0;
    page.on("load", () => loads++);
    await page.goto(`${coordinator.url}/`);
    await page.waitForSelector("#map[data-drawn]", { timeout: 60_000 });
    const state = () =>
      page.evaluate(() => {
        const cy = window.coralMap;
        const nodes: Record<string, string> = {};
        for (const n of cy?.nodes() ?? []) if (!n.id().startsWith("group:")) nodes[n.id()] = n.data("state") as string;
        return { nodes, edges: (cy?.edges() ?? []).map((e) => `${e.source().id()}>${e.target().id()}`) };
      });
    const before = await state();
    for (const s of mesh.services) expect(before.nodes[`service:${s.name}`], s.name).toBe("ok");
    expect(before.edges.sort()).toEqual(mesh.edges.map(([a, b]) => `service:${a}>service:${b}`).sort());

    await page.waitForSelector(".live.on");
    const sent = Date.now();
    await seeder.report("api-1", { events: [Seeder.event("service.health_changed", "checkout", { from: "serving", to: "not_serving" })] });
    await page.waitForFunction(() => window.coralMap?.getElementById("service:checkout").data("state") === "down", { timeout: 10_000 });
    console.log(`firefox: ingested → node red: ${Date.now() - sent} ms`);
    expect(Date.now() - sent).toBeLessThan(1_000);
    expect(loads).toBe(1);

    await page.focus('[data-service="catalog"] a');
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("checkout");
    await page.close();
  });

  it("renders the timeline and a service's charts", async () => {
    const page = await browser.newPage();
    await page.goto(`${coordinator.url}/#/timeline?service=checkout`);
    await page.waitForSelector("tr[data-event]", { timeout: 30_000 });
    expect(await page.$$eval("tr[data-event]", (rows) => rows.some((r) => r.textContent?.includes("not_serving")))).toBe(true);
    await page.goto(`${coordinator.url}/#/service/checkout`);
    await page.waitForFunction(() => document.querySelector("main")?.textContent?.includes("postgres"), { timeout: 30_000 });
    expect(await page.evaluate(() => document.querySelector("main")?.textContent)).toContain("redis");
    await page.close();
  });
});
