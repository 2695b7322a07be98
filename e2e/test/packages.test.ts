/**
 * Coral as people install it: every published package packed (`npm pack`), the tarballs
 * installed into an empty prefix with nothing from this workspace (third-party libraries come
 * from the registry, or npm's cache), and from there the installed `coral` runs a coordinator
 * in the NAT lab, the installed `coral-agent` joins it with the command `coral token create`
 * prints, loading a plugin written against the packed kit, and an app built on the packed SDK
 * shows up in `coral services`. One pack and one install, shared by every case below.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stopChild, waitForLine } from "@coral-mesh/coordinator/testing";
import type { ServiceSummary } from "@coral-mesh/sdk-proto";
import { labSkipReason, missingForNatLab } from "@coral-mesh/wireguard/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MeshLab, startMeshLab } from "../src/mesh.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const skip = missingForNatLab() ? labSkipReason("the installed packages in the lab") !== null : false;

/** What gets published; everything else in the workspace is bundled into these or stays home. */
const PUBLISHED = ["@coral-mesh/agent", "@coral-mesh/coordinator", "@coral-mesh/agent-plugins", "@coral-mesh/sdk"] as const;
/** Bundled into the published packages' dist, never installed. */
const INTERNAL = ["@coral-mesh/sdk-proto", "@coral-mesh/wireguard"];
const INTERNAL_IMPORT = /(\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)["']@coral-mesh\/(sdk-proto|wireguard)\b[^"']*["']/;
const UNITS = { "@coral-mesh/coordinator": "coral-coordinator.service", "@coral-mesh/agent": "coral-agent.service" } as const;

/** What `coral status --json` answers, as far as this test reads it. */
interface StatusResponse {
  agents: Array<{ name: string; status: string; path: string; plugins: Array<{ name: string; state: string }> }>;
}

/** npm as a user's shell runs it: none of the `npm_*` settings `npm test` passes down to this process. */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
}

function npm(args: string[], cwd: string): string {
  return execFileSync("npm", args, { cwd, env: npmEnv(), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
}

/** Every file under `dir`, relative to it. */
function walk(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? walk(path, base) : [relative(base, path)];
  });
}

/**
 * `setpriv` flags that give a command what the unit gives it: user id 0, but only the
 * capabilities of its CapabilityBoundingSet, and no new privileges. Running the lab's
 * coordinator and agent so shows the units' capabilities are enough.
 */
function unitCapabilities(unitFile: string): string[] {
  const line = /^CapabilityBoundingSet=(.*)$/m.exec(readFileSync(unitFile, "utf8"))?.[1] ?? "";
  const caps = line
    .split(/\s+/)
    .filter(Boolean)
    .map((cap) => `+${cap.replace(/^CAP_/, "").toLowerCase()}`)
    .join(",");
  return [`--bounding-set=-all,${caps}`, `--inh-caps=-all,${caps}`, `--ambient-caps=-all,${caps}`, "--no-new-privs"];
}

function diskUsageKiB(dir: string): number {
  return Number(execFileSync("du", ["-sk", dir], { encoding: "utf8" }).split("\t")[0]);
}

describe.skipIf(skip)("the published packages, installed from their tarballs", () => {
  let work: string;
  let prefix: string;
  const tarballs: Record<string, string> = {};
  let agentOnlyKiB = 0;
  let agentOnlyPackages: string[] = [];
  const bin = (name: string) => join(prefix, "node_modules", ".bin", name);
  const installed = (name: string) => join(prefix, "node_modules", name);

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "coral-packages-"));
    const packs = join(work, "tarballs");
    mkdirSync(packs);
    const packed = JSON.parse(
      npm(["pack", "--json", "--pack-destination", packs, ...PUBLISHED.flatMap((name) => ["-w", name])], root),
    ) as Array<{ name: string; filename: string }>;
    for (const { name, filename } of packed) tarballs[name] = join(packs, filename);
    expect(Object.keys(tarballs).sort()).toEqual([...PUBLISHED].sort());

    // What a host gets from `npm install -g @coral-mesh/agent`: the agent alone.
    const agentOnly = join(work, "agent-only");
    mkdirSync(agentOnly);
    npm(
      ["install", "--prefix", agentOnly, "--no-audit", "--no-fund", "--prefer-offline", tarballs["@coral-mesh/agent"] as string],
      agentOnly,
    );
    agentOnlyKiB = diskUsageKiB(agentOnly);
    agentOnlyPackages = readdirSync(join(agentOnly, "node_modules")).filter((name) => !name.startsWith("."));
    console.log(`installed size of the agent alone: ${(agentOnlyKiB / 1024).toFixed(1)} MiB (du -sk ${agentOnlyKiB})`);

    prefix = join(work, "prefix");
    mkdirSync(prefix);
    npm(["install", "--prefix", prefix, "--no-audit", "--no-fund", "--prefer-offline", ...Object.values(tarballs)], prefix);
  }, 900_000);

  // Two installs are tens of thousands of files: removing them takes a while on a busy host.
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  }, 180_000);

  it("install from the tarballs alone: no internal package, no TypeScript source, no workspace link", () => {
    const versions = new Set<string>();
    for (const name of INTERNAL) expect(existsSync(installed(name)), name).toBe(false);
    for (const name of PUBLISHED) {
      const dir = installed(name);
      // A real copy, not a link back into this checkout.
      expect(realpathSync(dir).startsWith(prefix), name).toBe(true);
      const files = walk(dir);
      expect(
        files.filter((file) => /\.(c|m)?ts$/.test(file) && !/\.d\.(c|m)?ts$/.test(file)),
        name,
      ).toEqual([]);
      // Neither code nor types import an internal package: they are bundled.
      for (const file of files.filter((f) => /\.(c|m)?js$|\.d\.ts$/.test(f))) {
        const text = readFileSync(join(dir, file), "utf8");
        expect(INTERNAL_IMPORT.exec(text)?.[0], `${name}/${file}`).toBeUndefined();
      }
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      expect(manifest.private, name).toBeUndefined();
      versions.add(manifest.version);
      expect(manifest.publishConfig, name).toEqual({ access: "public" });
      expect(manifest.engines, name).toEqual({ node: ">=20.3" });
    }
    // One release: the four packages move together.
    expect(versions.size, [...versions].join(", ")).toBe(1);
    // Only what a host needs: the agent bundles everything it runs.
    expect(agentOnlyPackages).toEqual(["@coral-mesh"]);
    expect(readdirSync(join(work, "agent-only", "node_modules", "@coral-mesh"))).toEqual(["agent"]);
    expect(agentOnlyKiB).toBeLessThan(4 * 1024);
  });

  it("every export of every package imports under plain Node, without the workspace's coral-source condition", () => {
    const specifiers = PUBLISHED.flatMap((name) => {
      const manifest = JSON.parse(readFileSync(join(installed(name), "package.json"), "utf8"));
      return (
        Object.keys(manifest.exports as Record<string, unknown>)
          .filter((subpath) => subpath !== "./package.json")
          // ./testing is the kit for vitest suites, whose optional peer (vitest) an app does not install.
          .filter((subpath) => !(name === "@coral-mesh/agent-plugins" && subpath === "./testing"))
          .map((subpath) => (subpath === "." ? name : `${name}/${subpath.slice(2)}`))
      );
    });
    expect(specifiers).toContain("@coral-mesh/sdk");
    const script = `for (const s of ${JSON.stringify(specifiers)}) { const m = await import(s); if (Object.keys(m).length === 0) throw new Error(s + " exports nothing"); }`;
    execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: prefix, stdio: ["ignore", "pipe", "pipe"] });
    expect(readFileSync(join(installed("@coral-mesh/sdk"), "dist", "index.d.ts"), "utf8")).toContain("startCoralSdk");
  });

  it("ships systemd units that systemd-analyze verifies, run the installed commands, and are hardened", () => {
    for (const [name, unit] of Object.entries(UNITS)) {
      const file = join(installed(name), "systemd", unit);
      execFileSync("systemd-analyze", ["verify", file], { stdio: ["ignore", "pipe", "pipe"] });
      const text = readFileSync(file, "utf8");
      const execStart = /^ExecStart=(.*)$/m.exec(text)?.[1] ?? "";
      expect(execStart).toMatch(name.endsWith("agent") ? /^\/usr\/bin\/env coral-agent / : /^\/usr\/bin\/env coral coordinator start /);
      expect(text).not.toMatch(/^[^#]*npx/m);
      for (const line of ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"])
        expect(text, unit).toContain(line);
      expect(/^StateDirectory=\S+/m.test(text), unit).toBe(true);
      // It would hide /usr/lib/modules, where the wireguard module is looked for before wireguard-go.
      expect(/^ProtectKernelModules=yes/m.test(text), unit).toBe(false);
      expect(/^CapabilityBoundingSet=.*CAP_NET_ADMIN/m.test(text), unit).toBe(true);
    }
  });

  it("`--help` says where the unit is in the installed package and how to enable it", () => {
    const help = (command: string, args: string[]) => execFileSync(bin(command), args, { encoding: "utf8", env: npmEnv() });
    const coordinator = help("coral", ["coordinator", "start", "--help"]);
    const agent = help("coral-agent", ["--help"]);
    for (const [text, name] of [
      [coordinator, "@coral-mesh/coordinator"],
      [agent, "@coral-mesh/agent"],
    ] as const) {
      const unit = join(realpathSync(installed(name)), "systemd", UNITS[name]);
      expect(text).toContain(`sudo cp ${unit} /etc/systemd/system/`);
      expect(text).toContain(`sudo systemctl enable --now ${UNITS[name].replace(".service", "")}`);
      expect(statSync(unit).isFile()).toBe(true);
    }
  });

  describe("in the NAT lab", () => {
    let lab: MeshLab;
    const children: ChildProcess[] = [];
    afterAll(async () => {
      for (const child of children.reverse()) await stopChild(child);
      await lab?.destroy();
    }, 60_000);

    /** An installed command in a lab namespace, from the prefix (so `./plugin` and packages resolve there). */
    const run = (ns: string, command: string, args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((done) =>
        execFile("ip", ["netns", "exec", ns, command, ...args], { cwd: prefix, env: npmEnv() }, (error, out, err) =>
          done({ code: error ? Number(error.code ?? 1) : 0, out, err }),
        ),
      );
    const start = (ns: string, command: string, args: string[], ready: RegExp, what: string, unit?: string) => {
      const confined = unit ? ["setpriv", ...unitCapabilities(unit), command] : [command];
      const child = spawn("ip", ["netns", "exec", ns, ...confined, ...args], {
        cwd: prefix,
        env: npmEnv(),
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.push(child);
      return { child, ...waitForLine(child, ready, what, 90_000) };
    };

    it("joins an installed agent to an installed coordinator, each with only its unit's capabilities; a kit plugin and an SDK app report through it", async () => {
      // A plugin as its author writes it: against the kit, by package name, beside its own zod.
      mkdirSync(join(prefix, "plugin"));
      writeFileSync(
        join(prefix, "plugin", "index.mjs"),
        `import { definePlugin, PLUGIN_API_VERSION } from "@coral-mesh/agent-plugins";
import * as z from "zod";
export default definePlugin({
  name: "packaged",
  version: "1.0.0",
  apiVersion: PLUGIN_API_VERSION,
  intervalMs: 1000,
  options: z.strictObject({}),
  collect(ctx) {
    ctx.emit.event({ kind: "packaged.tick", subject: { kind: "agent", id: "packaged" } });
  },
});
`,
      );
      // An app as its developer writes it: the SDK, by package name, on its default port.
      mkdirSync(join(prefix, "app"));
      writeFileSync(
        join(prefix, "app", "server.mjs"),
        `import { startCoralSdk } from "@coral-mesh/sdk";
const coral = await startCoralSdk({ service: "packaged-app", version: "2.3.4", checks: { ready: () => true } });
console.error("coral sdk listening on " + coral.address);
setInterval(() => {}, 60_000);
`,
      );

      lab = await startMeshLab();
      const hub = lab.nat.addSite("hub", "none");
      const site = lab.nat.addSite("host", "port-restricted");
      const hubNs = hub.hosts[0]?.ns as string;
      const hostNs = site.hosts[0]?.ns as string;
      const coordinatorData = join(lab.dir, "coordinator");
      const coordinator = start(
        hubNs,
        bin("coral"),
        [
          "coordinator",
          "start",
          "--discovery",
          lab.discovery.url,
          "--data-dir",
          coordinatorData,
          "--interface",
          `${lab.nat.prefix}c1`,
          "--heartbeat-interval",
          "1s",
        ],
        / ready: /,
        "the installed coordinator",
        join(installed("@coral-mesh/coordinator"), "systemd", UNITS["@coral-mesh/coordinator"]),
      );
      await coordinator.ready;

      // The app starts first, as at boot, so the agent's first collect finds it.
      const app = start(hostNs, process.execPath, [join(prefix, "app", "server.mjs")], /coral sdk listening on/, "the SDK app");
      await app.ready;

      const token = await run(hubNs, bin("coral"), ["token", "create", "--data-dir", coordinatorData]);
      expect(token.code, token.err).toBe(0);
      // The hint is the installed command, never npx (`coral` on the registry is someone else's).
      expect(token.out).not.toContain("npx");
      expect(token.out).toContain("npm install -g @coral-mesh/agent");
      const hint = /^ {2}sudo (coral-agent --join \S+ .*)$/m.exec(token.out)?.[1];
      expect(hint, token.out).toBeDefined();
      const [command, ...hinted] = (hint as string).split(" ");
      expect(command).toBe("coral-agent");
      const agent = start(
        hostNs,
        bin("coral-agent"),
        [
          ...hinted,
          // The lab's additions: its own data directory and interface, and the kit plugin (the last --plugins wins).
          "--data-dir",
          join(lab.dir, "agent"),
          "--interface",
          `${lab.nat.prefix}g1`,
          "--name",
          "host-b",
          "--plugins=passive,sdk,./plugin/index.mjs",
        ],
        / running as /,
        "the installed agent",
        join(installed("@coral-mesh/agent"), "systemd", UNITS["@coral-mesh/agent"]),
      );
      await agent.ready;

      // `coral status`, installed, shows the agent healthy with the kit plugin running.
      let status: StatusResponse | undefined;
      let services: ServiceSummary[] = [];
      let events = "";
      for (let tries = 0; tries < 60; tries++) {
        const shown = await run(hubNs, bin("coral"), ["status", "--json", "--data-dir", coordinatorData]);
        status = shown.code === 0 ? (JSON.parse(shown.out) as StatusResponse) : undefined;
        const listed = await run(hubNs, bin("coral"), ["services", "--json", "--data-dir", coordinatorData]);
        services = listed.code === 0 ? (JSON.parse(listed.out) as ServiceSummary[]) : [];
        events = (await run(hubNs, bin("coral"), ["events", "--json", "--data-dir", coordinatorData])).out;
        const agentView = status?.agents.find((a) => a.name === "host-b");
        if (
          agentView?.status === "healthy" &&
          agentView.plugins.some((p) => p.name === "packaged" && p.state === "running") &&
          // Health comes on the SDK's Watch stream, a moment after the service is first observed.
          services.some((s) => s.name === "packaged-app" && s.source === "sdk" && s.health === "serving") &&
          events.includes("packaged.tick")
        )
          break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      const agentView = status?.agents.find((a) => a.name === "host-b");
      expect(agentView, JSON.stringify(status)).toMatchObject({ status: "healthy", path: "direct" });
      expect(agentView?.plugins.find((p) => p.name === "packaged")).toMatchObject({ state: "running" });
      expect(events).toContain("packaged.tick");
      const shop = services.find((s) => s.name === "packaged-app");
      expect(shop, JSON.stringify(services)).toMatchObject({ source: "sdk", versions: ["2.3.4"], health: "serving" });

      // The table people read says the same.
      const table = await run(hubNs, bin("coral"), ["status", "--data-dir", coordinatorData]);
      expect(table.out).toMatch(/host-b\s+\S+\s+healthy/);
    }, 300_000);
  });
});
