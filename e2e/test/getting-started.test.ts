/**
 * docs/getting-started.md, run as written: every `sh` block, on the host its first line
 * names, in a lab where the coordinator's host is on the internet and the agent's host is
 * behind a NAT. `sudo` is dropped (the tests run as root), HOME is a fresh directory per
 * host (so `~/.coral` and `~/.coral-agent` are new), and the placeholders COORDINATOR_ADDRESS
 * and INVITE get what the steps before produced. What cannot run here is checked instead:
 * the Debian packages the page installs are installed; the npm packages it installs globally
 * are this workspace's published packages, whose commands this checkout links where a global
 * install would (`node_modules/.bin`, put first on PATH); installing them from their tarballs
 * is what packages.test.ts proves. The clone the trial discovery needs is this checkout.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createNatLab, labSkipReason, missingForNatLab, type NatLab } from "@coral-mesh/wireguard/testing";
import { afterAll, describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const skip = missingForNatLab() ? labSkipReason("the getting-started walkthrough") !== null : false;

interface Block {
  host: "both" | "coordinator" | "agent";
  commands: string[];
}

function blocks(markdown: string): Block[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => {
    const lines = (match[1] as string).split("\n").filter((l) => l.trim() !== "");
    const marker = /^# on (both hosts|the coordinator host|the agent host)$/.exec(lines[0] ?? "");
    if (!marker) throw new Error(`an sh block in getting-started.md must start with "# on ... host(s)": ${lines[0]}`);
    const host = marker[1] === "both hosts" ? "both" : marker[1] === "the coordinator host" ? "coordinator" : "agent";
    return { host, commands: lines.slice(1).map((l) => l.replace(/\s+#.*$/, "")) };
  });
}

/** Whether any process of this (negative) process group is alive. */
function alive(group: number): boolean {
  try {
    process.kill(group, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)("docs/getting-started.md", () => {
  const steps = blocks(readFileSync(join(root, "docs", "getting-started.md"), "utf8"));
  let lab: NatLab;
  const running: ChildProcess[] = [];
  const homes: string[] = [];

  afterAll(async () => {
    // As a terminal's Ctrl-C would: the signal goes to each command's whole process group
    // (npx and the node it starts), and the test waits until all of it has exited.
    for (const child of running.reverse()) {
      const group = -(child.pid as number);
      try {
        process.kill(group, "SIGINT");
      } catch {}
      for (let i = 0; i < 150 && alive(group); i++) await new Promise((r) => setTimeout(r, 100));
      try {
        process.kill(group, "SIGKILL");
      } catch {}
    }
    lab?.destroy();
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it("walks from two fresh hosts to an agent that coral status shows healthy", async () => {
    const [install, ...rest] = steps;
    // 1. Installing: the Debian packages are there (CI installs them), and this is a built checkout.
    expect(install?.host).toBe("both");
    expect(install?.commands).toHaveLength(1);
    const apt = install?.commands[0] ?? "";
    for (const pkg of apt.replace(/^.*apt-get install -y /, "").split(" ")) {
      expect(() => execFileSync("dpkg", ["-s", pkg], { stdio: "ignore" }), `package ${pkg}`).not.toThrow();
    }
    expect(existsSync(join(root, "coordinator", "dist", "cli.js")) && existsSync(join(root, "agent", "dist", "cli.js"))).toBe(true);
    // What each host installs globally, and the command the page then runs from it.
    const globalInstalls: Record<string, string> = {};
    const expectedInstalls = { coordinator: "@coral-mesh/coordinator coral", agent: "@coral-mesh/agent coral-agent" };

    lab = createNatLab();
    const coordinatorSite = lab.addSite("hub", "none");
    const agentSite = lab.addSite("host-b", "port-restricted");
    const hosts = {
      coordinator: { ns: coordinatorSite.hosts[0]?.ns as string, home: mkdtempSync(join(tmpdir(), "coral-gs-a-")) },
      agent: { ns: agentSite.hosts[0]?.ns as string, home: mkdtempSync(join(tmpdir(), "coral-gs-b-")) },
    };
    homes.push(hosts.coordinator.home, hosts.agent.home);
    const values: Record<string, string> = { COORDINATOR_ADDRESS: coordinatorSite.publicAddress };

    const prepare = (command: string) =>
      Object.entries(values).reduce((c, [placeholder, value]) => c.replaceAll(placeholder, value), command.replace(/^sudo /, ""));
    const env = (home: string) => ({
      ...process.env,
      HOME: home,
      NO_COLOR: "1",
      PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH}`,
    });
    /** A command that runs until stopped: started, and awaited until it prints `ready`. */
    const serve = (host: keyof typeof hosts, command: string, ready: RegExp) =>
      new Promise<void>((done, fail) => {
        const { ns, home } = hosts[host];
        const child = spawn("ip", ["netns", "exec", ns, "sh", "-c", `exec ${prepare(command)}`], {
          cwd: root,
          env: env(home),
          stdio: ["ignore", "pipe", "pipe"],
          detached: true,
        });
        running.push(child);
        const log: string[] = [];
        const timer = setTimeout(() => fail(new Error(`\`${command}\` did not get ready in 90 s:\n${log.join("\n")}`)), 90_000);
        for (const stream of [child.stdout, child.stderr]) {
          createInterface({ input: stream as NodeJS.ReadableStream }).on("line", (line) => {
            log.push(line);
            if (ready.test(line)) {
              clearTimeout(timer);
              done();
            }
          });
        }
        child.once("exit", (code) => fail(new Error(`\`${command}\` exited (${code}):\n${log.join("\n")}`)));
      });
    /** A command that finishes: its output, or a failure with what it printed. */
    const run = (host: keyof typeof hosts, command: string) =>
      new Promise<string>((done, fail) => {
        const { ns, home } = hosts[host];
        execFile("ip", ["netns", "exec", ns, "sh", "-c", prepare(command)], { cwd: root, env: env(home) }, (error, out, err) =>
          error ? fail(new Error(`\`${command}\` failed: ${err}${out}`)) : done(out),
        );
      });

    const longRunning: Array<[RegExp, RegExp]> = [
      [/^npm start -w @coral-mesh\/discovery-worker/, /Discovery is serving at/],
      [/coral coordinator start/, / ready: /],
      [/coral-agent --join/, / running as /],
    ];
    let status = "";
    for (const block of rest) {
      expect(block.host).not.toBe("both");
      const host = block.host as keyof typeof hosts;
      for (const command of block.commands) {
        const globalInstall = /^sudo npm install -g (@coral-mesh\/[a-z-]+)$/.exec(command);
        if (globalInstall) {
          // A published package (not private, with its command), which this checkout links.
          const name = globalInstall[1] as string;
          const manifest = JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8"));
          expect(manifest.private, name).toBeUndefined();
          const bin = Object.keys(manifest.bin ?? {})[0] as string;
          expect(existsSync(join(root, "node_modules", ".bin", bin)), bin).toBe(true);
          globalInstalls[host] = `${name} ${bin}`;
          continue;
        }
        if (command.startsWith("git clone ")) {
          // Only the trial discovery comes from the repository: this checkout.
          expect(command).toBe("git clone https://github.com/coral-mesh/coral.git && cd coral && npm ci");
          expect(host).toBe("coordinator");
          continue;
        }
        // Every command of the page is an installed one, never npx (npx coral is someone else's package).
        expect(command).not.toMatch(/\bnpx coral/);
        const serving = longRunning.find(([pattern]) => pattern.test(command.replace(/^sudo /, "")));
        if (serving) {
          await serve(host, command, serving[1]);
          continue;
        }
        let out = await run(host, command);
        // Right after the agent starts, its first heartbeat may still be on its way.
        for (let tries = 0; /coral status$/.test(command) && !/healthy/.test(out) && tries < 20; tries++) {
          await new Promise((r) => setTimeout(r, 500));
          out = await run(host, command);
        }
        if (/coral token create/.test(command)) {
          const invite = /coral2_[A-Za-z0-9_-]+/.exec(out)?.[0];
          expect(invite, out).toBeDefined();
          values.INVITE = invite as string;
        }
        if (/coral status$/.test(command)) status = out;
      }
    }
    expect(globalInstalls).toEqual(expectedInstalls);
    // The last step shows the agent, healthy, over a direct path.
    expect(status).toMatch(/healthy\s+\S+(\s\S+)?\s+direct/);
  }, 240_000);
});
