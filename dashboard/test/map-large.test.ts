/**
 * The map of a large mesh in chromium (300 services, 1,000 edges, the bench's): what makes it
 * fast must not change what it shows. Its API answers come once each, preloaded by index.html
 * and with only the fields it draws; labels come with a zoom that can read them; the detail's
 * counts are the drawn edges'.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAP_REQUESTS } from "../src/map-requests.js";
import { browserSkipReason, largeMesh, launchBrowser, type RunningCoordinator, Seeder, startCoordinator } from "./harness.js";

const skipReason = browserSkipReason();
if (skipReason && process.env.CORAL_REQUIRE_ALL === "1") throw new Error(`the dashboard's browser tests cannot run: ${skipReason}`);

describe.skipIf(skipReason !== null)("the map of 300 services in chromium", () => {
  let coordinator: RunningCoordinator;
  let seeder: Seeder;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  const mesh = largeMesh(300, 1_000);

  beforeAll(async () => {
    [coordinator, browser] = await Promise.all([startCoordinator(), launchBrowser()]);
    seeder = new Seeder(coordinator);
    seeder.addAgents(mesh.agents);
    await seeder.services(mesh.services);
    await seeder.edges(mesh.services, mesh.edges);
  });
  afterAll(async () => {
    seeder?.close();
    await browser?.dispose();
    await coordinator?.stop();
  });

  it("asks for each of its four answers once, while index.html is parsed, with only the fields it draws", async () => {
    const page = await browser.newPage();
    await page.goto(`${coordinator.url}/`);
    await page.waitForSelector("#map[data-drawn]", { timeout: 60_000 });
    const asked = await page.evaluate(() =>
      (performance.getEntriesByType("resource") as PerformanceResourceTiming[])
        .filter((r) => new URL(r.name).pathname.startsWith("/v1/") && !r.name.endsWith("/v1/stream"))
        .map((r) => ({ url: r.name.slice(location.origin.length), by: r.initiatorType })),
    );
    expect(asked.map((r) => r.url).sort()).toEqual([...MAP_REQUESTS].sort());
    for (const r of asked) expect(r.by, r.url).toBe("link");
    expect(MAP_REQUESTS.some((url) => url.startsWith("/v1/services?fields=") && !url.includes("dependencies"))).toBe(true);
    const drawn = await page.evaluate(() => ({ nodes: window.coralMap?.nodes().length, edges: window.coralMap?.edges().length }));
    expect(drawn).toEqual({ nodes: 300, edges: 1_000 });
    await page.close();
  });

  it("labels its nodes at a zoom that reads them, and not below it, where cytoscape would not draw them", async () => {
    const page = await browser.newPage();
    await page.goto(`${coordinator.url}/`);
    await page.waitForSelector("#map[data-drawn]", { timeout: 60_000 });
    const labels = () =>
      page.evaluate(() => {
        const cy = window.coralMap;
        if (!cy) return { zoom: 0, labelled: 0, nodes: 0 };
        const nodes = cy.nodes();
        return { zoom: cy.zoom(), labelled: nodes.filter((n) => n.style("label") === n.data("label")).length, nodes: nodes.length };
      });
    const first = await labels();
    // The whole graph fits at a zoom where an 11 px label would be under 7 px: none drawn, none set.
    expect(first.zoom * (await page.evaluate(() => devicePixelRatio))).toBeLessThanOrEqual(0.5);
    expect(first.labelled).toBe(0);
    // (In braces: zoom() returns the graph, which the page would otherwise send back whole.)
    await page.evaluate(() => {
      window.coralMap?.zoom(1);
    });
    expect(await labels()).toMatchObject({ zoom: 1, labelled: 300 });
    await page.evaluate(() => {
      window.coralMap?.zoom(0.2);
    });
    expect(await labels()).toMatchObject({ labelled: 0 });
    // At every zoom, a node has its label exactly when cytoscape's renderer would draw it.
    const agree = await page.evaluate(() => {
      const cy = window.coralMap;
      if (!cy) return [];
      const renderer = (cy as unknown as { renderer(): { eleTextBiggerThanMin(node: unknown): boolean } }).renderer();
      return [0.1, 0.25, 0.26, 0.5, 0.51, 0.8, 2].map((zoom) => {
        cy.zoom(zoom);
        const node = cy.nodes()[0];
        if (!node) return { zoom, named: false, drawn: true };
        const named = node.hasClass("named");
        node.addClass("named");
        const drawn = renderer.eleTextBiggerThanMin(node);
        if (!named) node.removeClass("named");
        return { zoom, named, drawn };
      });
    });
    expect(agree).toHaveLength(7);
    for (const a of agree) expect(a.named, `zoom ${a.zoom}`).toBe(a.drawn);
    expect(agree.filter((a) => a.named).map((a) => a.zoom)).toEqual([0.51, 0.8, 2]);
    await page.close();
  });

  it("lists every service beside the graph once it is drawn, and counts a service's calls from the edges drawn", async () => {
    const page = await browser.newPage();
    await page.goto(`${coordinator.url}/`);
    await page.waitForSelector("#map[data-drawn]", { timeout: 60_000 });
    await page.waitForSelector('[data-service="svc-0"] a');
    expect(await page.$$eval("[data-service]", (items) => items.length)).toBe(300);
    const name = "svc-120";
    const calls = mesh.edges.filter(([from]) => from === name).length;
    const calledBy = mesh.edges.filter(([, to]) => to === name).length;
    await page.focus(`[data-service="${name}"] a`);
    await page.waitForSelector(".detail h2");
    expect(await page.textContent(".detail")).toContain(`calls ${calls}, called by ${calledBy}`);
    await page.close();
  });
});
