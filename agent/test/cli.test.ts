import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { generateSigningKeyPair, issueInvite } from "@coral-mesh/sdk-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentNodeFlags } from "../src/boot.js";

const agentDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");

describe("coral-agent, where it cannot run", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "coral-agent-cli-"));
    chmodSync(dir, 0o777);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A well-formed invite to a discovery that is not there (127.0.0.1:9). */
  const anInvite = async () =>
    issueInvite(await generateSigningKeyPair(), {
      discoveryUrl: "http://127.0.0.1:9",
      tokenId: "tokentokentokent",
      secret: "s".repeat(43),
      expiresAt: Date.now() + 3_600_000,
    });

  const run = (args: string[], asNobody = false, built = false) => {
    // Built, as users run it: the command itself, whose `#!` line starts node with the agent's flags.
    const argv = built
      ? [join(agentDir, "bin", "coral-agent.cjs"), ...args]
      : [process.execPath, "--conditions=coral-source", "--import", "tsx", "src/cli.ts", ...args];
    const [command, rest] =
      asNobody && process.getuid?.() === 0
        ? ["setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", ...argv]]
        : [argv[0] as string, argv.slice(1)];
    const result = spawnSync(command, rest, { cwd: agentDir, encoding: "utf8", env: { ...process.env, HOME: dir } });
    return { code: result.status, err: result.stderr };
  };

  it("without root, says so in one line before spending the invite", async () => {
    const invite = await anInvite();
    const result = run(["--join", invite, "--plugins=coral-plugin-sample", "--data-dir", join(dir, "nobody")], true);
    expect(result.code).toBe(1);
    expect(result.err.trim()).toBe(
      "coral-agent: WireGuard needs root or CAP_NET_ADMIN: run with sudo, or grant the capability (setcap cap_net_admin+ep).",
    );
  }, 30_000);

  // The agent ships as one bundle with its own zod inside; a plugin package brings another.
  const built = existsSync(join(agentDir, "dist", "cli.js"));
  if (!built) {
    process.stdout.write("skipping the built-agent test: run `npm run build` first\n");
  }
  it.skipIf(!built)(
    "the built bundle loads built-ins and a plugin package that brings its own zod",
    async () => {
      const invite = await anInvite();
      const ok = run(["--join", invite, "--plugins=passive,sdk,coral-plugin-sample", "--data-dir", join(dir, "built")], true, true);
      // Past plugin loading and option checks, it stops at the first thing that needs root.
      expect(ok.err.trim()).toBe(
        "coral-agent: WireGuard needs root or CAP_NET_ADMIN: run with sudo, or grant the capability (setcap cap_net_admin+ep).",
      );
      const bad = run(["--plugins=coral-plugin-sample", "--set", "sample.label=", "--data-dir", join(dir, "built")], false, true);
      expect(bad.err).toMatch(
        /^coral-agent: plugin "sample" options: label must not be empty; fix them in the config file or with --set\.\n$/,
      );
    },
    30_000,
  );

  it("the built agent comes with a V8 code cache that node, started as coral-agent is, accepts", () => {
    const boot = join(agentDir, "dist", "boot.js");
    const script = `const b = await import(${JSON.stringify(boot)}); console.log(b.codeCacheAccepted(), typeof b.loadBundle()?.runAgentCli);`;
    const result = spawnSync(process.execPath, [...agentNodeFlags(join(agentDir, "src")), "--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    expect(result.stdout.trim()).toBe("true function");
  });

  it("runs under the Node.js flags on its command's #! line, which node accepts", () => {
    const flags = agentNodeFlags(join(agentDir, "src"));
    expect(flags).toEqual(["--lite-mode", "--no-expose-wasm", "--no-memory-reducer"]);
    // Through the command itself, as a shell (or npx) starts it: env -S splits the #! line.
    const probe = join(dir, "probe.mjs");
    writeFileSync(probe, "console.log(JSON.stringify(process.execArgv));\n");
    const shebang = readFileSync(join(agentDir, "bin", "coral-agent.cjs"), "utf8").split("\n", 1)[0] as string;
    const viaShebang = join(dir, "probe-bin.mjs");
    writeFileSync(viaShebang, `${shebang}\nawait import(${JSON.stringify(probe)});\n`, { mode: 0o755 });
    const result = spawnSync(viaShebang, [], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout)).toEqual(flags);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "as root, names a damaged invite in one line, before any network",
    async () => {
      const invite = await anInvite();
      const cut = invite.slice(0, -6);
      const result = run(["--join", cut, "--plugins=coral-plugin-sample", "--data-dir", join(dir, "damaged")]);
      expect(result.code).toBe(1);
      expect(result.err.trim().split("\n")).toHaveLength(1);
      expect(result.err).toMatch(
        /^coral-agent: This invite is damaged \(.+\); copy it again, all of it, from the output of `coral token create`\.\n$/,
      );
      expect(existsSync(join(dir, "damaged", "mesh.json"))).toBe(false);
    },
    30_000,
  );

  it("names an unknown plugin, and a malformed plugin list, each in one line", () => {
    const unknown = run(["--plugins=coral-plugin-nonexistent", "--data-dir", join(dir, "a")]);
    expect(unknown).toEqual({
      code: 1,
      err: 'coral-agent: Plugin "coral-plugin-nonexistent" was not found: install it (npm install coral-plugin-nonexistent).\n',
    });
    const list = run(["--plugins=Not A Plugin!", "--data-dir", join(dir, "a")]);
    expect(list.code).toBe(1);
    expect(list.err).toMatch(/^coral-agent: "Not A Plugin!" in --plugins is not a built-in/);
    expect(existsSync(join(dir, "a", "mesh.json"))).toBe(false);
  }, 30_000);

  it("validates plugin options from the config file and --set, naming the plugin and the field", () => {
    const config = join(dir, "agent.json");
    writeFileSync(config, JSON.stringify({ plugins: { sample: { label: "" } } }));
    const fromFile = run(["--config", config, "--plugins=coral-plugin-sample", "--data-dir", join(dir, "b")]);
    expect(fromFile.code).toBe(1);
    expect(fromFile.err).toMatch(
      /^coral-agent: plugin "sample" options: label must not be empty; fix them in the config file or with --set\.\n$/,
    );
    const fromFlag = run([
      "--plugins=coral-plugin-sample",
      "--set",
      "sample.label=7",
      "--set",
      "sample.extra=true",
      "--data-dir",
      join(dir, "b"),
    ]);
    expect(fromFlag.err).toMatch(/^coral-agent: plugin "sample" options: label must be text; unknown field extra \(check the spelling\)/);
    const typo = run(["--config", join(dir, "missing.json"), "--data-dir", join(dir, "b")]);
    expect(typo.err).toBe(`coral-agent: The config file ${join(dir, "missing.json")} does not exist.\n`);
  }, 30_000);
});
