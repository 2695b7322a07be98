import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type LocalDiscovery, startLocalDiscovery } from "@coral-mesh/discovery-worker/local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/index.js";

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe("coral", () => {
  it("prints its version and help", async () => {
    expect((await run("--version")).out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const help = await run("discovery", "check", "--help");
    expect(help.code).toBe(0);
    expect(help.out).toContain("Usage: coral discovery check [options] <url>");
  });

  it("exits 2 on a usage error, saying what is wrong", async () => {
    const result = await run("discovery", "check");
    expect(result.code).toBe(2);
    expect(result.err).toBe("coral: [usage_invalid] missing required argument 'url' (run with --help for usage).\n");
  });
});

describe("coral discovery check, against the Worker served by wrangler dev", () => {
  let discovery: LocalDiscovery;
  beforeAll(async () => {
    discovery = await startLocalDiscovery({ port: 0 });
  }, 90_000);
  afterAll(async () => {
    await discovery?.stop();
  });

  it("reports the service, its latency and the clock offset", async () => {
    const result = await run("discovery", "check", discovery.url, "--json");
    expect(result.code).toBe(0);
    const check = JSON.parse(result.out) as Record<string, unknown>;
    expect(check).toMatchObject({ ok: true, service: "coral-discovery", apiVersion: "v1", problems: [] });
    expect(Math.abs(check.clockSkewMs as number)).toBeLessThan(2_000);
    const table = await run("discovery", "check", discovery.url);
    expect(table.out).toMatch(/service\s+coral-discovery \d+\.\d+\.\d+ \(API v1\)/);
    expect(table.out.trim().endsWith("ok")).toBe(true);
  });

  it("says in one line when nothing answers there", async () => {
    const result = await run("discovery", "check", "http://127.0.0.1:9");
    expect(result.code).toBe(1);
    expect(result.err.trim().split("\n")).toHaveLength(1);
    expect(result.err).toMatch(
      /^coral: \[discovery_unreachable\] Cannot reach discovery at http:\/\/127\.0\.0\.1:9: .+Check the URL and the network\./,
    );
  });

  it("passes discovery's own error on, for a URL with a path below the API root", async () => {
    const result = await run("discovery", "check", `${discovery.url}/v1/health`);
    expect(result.code).toBe(1);
    expect(result.err).toBe("coral: [not_found] No such route; the API is described in docs/discovery.md.\n");
  });

  it("says when the URL serves something that is not discovery", async () => {
    const web = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<h1>hello</h1>"));
    await new Promise<void>((resolve) => web.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = web.address() as AddressInfo;
      const result = await run("discovery", "check", `http://127.0.0.1:${port}`);
      expect(result.code).toBe(1);
      expect(result.err).toMatch(
        /^coral: \[discovery_bad_response\] Discovery at http:\/\/127\.0\.0\.1:\d+ answered 200 with a body that is not JSON; is the URL a Coral discovery Worker\?\n$/,
      );
    } finally {
      web.close();
    }
  });
});

describe("coral coordinator start, where it cannot run", () => {
  const cli = resolve(dirname(fileURLToPath(import.meta.url)), "../src/cli.ts");
  const node = [process.execPath, "--conditions=coral-source", "--import", "tsx", cli];
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "coral-noroot-"));
    chmodSync(dir, 0o777);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the real binary; as root, `setpriv` drops to nobody when asked to. */
  function start(options: { asNobody?: boolean; path?: string }, dataDir: string) {
    const argv = [...node, "coordinator", "start", "--discovery", "http://127.0.0.1:9", "--data-dir", dataDir, "--interface", "coraltest0"];
    const [command, args] =
      options.asNobody && process.getuid?.() === 0
        ? ["setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", ...argv]]
        : [argv[0] as string, argv.slice(1)];
    const result = spawnSync(command, args, {
      cwd: dirname(cli),
      encoding: "utf8",
      env: { ...process.env, ...(options.path ? { PATH: options.path } : {}), HOME: dir },
    });
    return { code: result.status, err: result.stderr };
  }

  it("without root or CAP_NET_ADMIN, stops with one line saying what to do", () => {
    const result = start({ asNobody: true }, join(dir, "nobody"));
    expect(result.code).toBe(1);
    const lines = result.err.trim().split("\n");
    expect(lines.at(-1)).toBe(
      "coral: [wireguard_permission] WireGuard needs root or CAP_NET_ADMIN: run with sudo, or grant the capability (setcap cap_net_admin+ep).",
    );
    // Progress lines come first, then the one error; nothing else.
    expect(lines.slice(0, -1).every((line) => /^\d{4}-\d\d-\d\dT[\d:]+Z /.test(line))).toBe(true);
  }, 30_000); // a CLI started through tsx: seconds on a busy host

  it.skipIf(process.getuid?.() !== 0)(
    "without the WireGuard tools, names the packages to install",
    () => {
      // PATH holds node only: no wg, no ip (so nothing can touch this machine's network).
      const bin = join(dir, "bin");
      mkdirSync(bin);
      symlinkSync(process.execPath, join(bin, "node"));
      const result = start({ path: bin }, join(dir, "root"));
      expect(result.code).toBe(1);
      expect(result.err.trim().split("\n").at(-1)).toBe(
        "coral: [wireguard_missing] WireGuard tools are missing: install wireguard-tools and iproute2 (Debian/Ubuntu: apt-get install wireguard-tools iproute2).",
      );
    },
    30_000,
  );
});
