/**
 * `npm run bench -w @coral-mesh/dashboard`: the map of 300 services and 1,000 edges, drawn in
 * Debian's chromium from a real coordinator, timed in the browser (navigation start to the
 * graph laid out and painted: the `coral:map-drawn` mark); then the time from a health change
 * reported to the coordinator to the node showing it. Prints medians; `--json` prints them as JSON.
 */
import { largeMesh, launchBrowser, Seeder, startCoordinator } from "../test/harness.js";

const SERVICES = 300;
const EDGES = 1_000;
const LOADS = 7;
const UPDATES = 15;
const json = process.argv.includes("--json");

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

const coordinator = await startCoordinator();
const browser = await launchBrowser();
const seeder = new Seeder(coordinator);
try {
  const mesh = largeMesh(SERVICES, EDGES);
  seeder.addAgents(mesh.agents);
  await seeder.services(mesh.services);
  await seeder.edges(mesh.services, mesh.edges);

  const loads: number[] = [];
  const data: number[] = [];
  let shown = { nodes: 0, edges: 0 };
  for (let i = 0; i < LOADS; i++) {
    const page = await browser.newPage();
    await page.goto(`${coordinator.url}/`);
    await page.waitForSelector("#map[data-drawn]", { timeout: 120_000 });
    loads.push(await page.evaluate(() => performance.getEntriesByName("coral:map-drawn")[0]?.startTime ?? Number.NaN));
    data.push(await page.evaluate(() => performance.getEntriesByName("coral:map-data")[0]?.startTime ?? Number.NaN));
    shown = await page.evaluate(() => ({ nodes: window.coralMap?.nodes().length ?? 0, edges: window.coralMap?.edges().length ?? 0 }));
    if (i < LOADS - 1) await page.close();
  }

  const page = browser.pages().at(-1);
  if (!page) throw new Error("no page");
  await page.waitForSelector(".live.on");
  const updates: number[] = [];
  for (let i = 0; i < UPDATES; i++) {
    const service = mesh.services[(i * 17) % SERVICES];
    if (!service) continue;
    const to = "not_serving";
    const sent = Date.now();
    await seeder.report(service.agent, { events: [Seeder.event("service.health_changed", service.name, { from: "serving", to })] });
    await page.waitForFunction((id) => window.coralMap?.getElementById(id).data("state") === "down", `service:${service.name}`, {
      polling: "raf",
      timeout: 30_000,
    });
    updates.push(Date.now() - sent);
    await seeder.report(service.agent, { events: [Seeder.event("service.health_changed", service.name, { from: to, to: "serving" })] });
    await page.waitForFunction((id) => window.coralMap?.getElementById(id).data("state") === "ok", `service:${service.name}`, {
      polling: "raf",
      timeout: 30_000,
    });
  }

  const result = {
    services: SERVICES,
    edges: EDGES,
    shown,
    mapDrawnMs: { median: Math.round(median(loads)), runs: loads.map(Math.round) },
    /** Of which: navigation start to the API's answers in hand (fetch and parse). */
    mapDataMs: { median: Math.round(median(data)) },
    liveUpdateMs: { median: Math.round(median(updates)), runs: updates },
    targets: { mapDrawnMs: 500, liveUpdateMs: 1_000 },
  };
  if (json) console.log(JSON.stringify(result));
  else {
    console.log(`map of ${SERVICES} services, ${EDGES} edges (${shown.nodes} nodes, ${shown.edges} edges drawn)`);
    console.log(`  navigation start → map drawn: median ${result.mapDrawnMs.median} ms over ${LOADS} loads (target < 500 ms)`);
    console.log(`    of which navigation start → the API's answers in hand: median ${result.mapDataMs.median} ms`);
    console.log(`  health change reported → node shows it: median ${result.liveUpdateMs.median} ms over ${UPDATES} (target < 1000 ms)`);
  }
} finally {
  seeder.close();
  await browser.dispose();
  await coordinator.stop();
}
