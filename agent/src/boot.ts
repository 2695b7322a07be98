/**
 * Loading the built agent fast. Node 20 keeps no code cache for ES modules, so every start
 * would compile the agent's half megabyte of JavaScript afresh (about 45 ms here, a tenth of
 * a restart). The build therefore also emits the program as one CommonJS bundle,
 * `agent.cjs`, and V8's code cache for it, `agent.cjs.v8cache`, which this loads with it.
 * A cache made by another Node or V8 is rejected by V8 and the code compiled as usual.
 *
 * Code compiled through `vm` cannot `import()` on Node 20 (not without an experimental flag),
 * so plugins from paths and packages are imported by the caller: see `runAgentCli`'s hooks.
 *
 * The `coral-agent` command loads this file built as CommonJS (`dist/boot.cjs`), passing
 * the directory, since there is no `import.meta.url` there.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

export type Program = typeof import("./program.js");

/**
 * The Node.js flags `coral-agent` runs with: those on the `#!` line of bin/coral-agent.cjs, the
 * one place they are set. The code cache is only accepted by a V8 started with the flags it was
 * written under, so the build writes it under these, and whatever starts the agent otherwise
 * (the bench) passes them too.
 */
export function agentNodeFlags(dir = here()): string[] {
  const shebang = readFileSync(join(dir, "..", "bin", "coral-agent.cjs"), "utf8").split("\n", 1)[0] ?? "";
  return shebang.split(" ").filter((word) => word.startsWith("--"));
}

const BUNDLE = "agent.cjs";
const here = () => dirname(fileURLToPath(import.meta.url));

/** The program from `agent.cjs` beside this file, or undefined where there is none (running from source). */
export function loadBundle(dir = here()): Program | undefined {
  const filename = join(dir, BUNDLE);
  if (!existsSync(filename)) return undefined;
  return run(filename, compile(filename, readCache(filename)));
}

/** Writes the code cache for `agent.cjs`, after running its top level (so that what that compiles is in it too). */
export function writeCodeCache(dir = here()): number {
  const filename = join(dir, BUNDLE);
  const script = compile(filename, undefined);
  run(filename, script);
  const data = script.createCachedData();
  writeFileSync(`${filename}.v8cache`, data);
  return data.length;
}

/** Whether V8 takes the code cache beside `agent.cjs` (not when there is none, or it was made by another V8). */
export function codeCacheAccepted(dir = here()): boolean {
  const filename = join(dir, BUNDLE);
  const cachedData = readCache(filename);
  return cachedData !== undefined && compile(filename, cachedData).cachedDataRejected === false;
}

function readCache(filename: string): Buffer | undefined {
  try {
    return readFileSync(`${filename}.v8cache`);
  } catch {
    return undefined;
  }
}

function compile(filename: string, cachedData: Buffer | undefined): vm.Script {
  // The CommonJS wrapper, on the bundle's first line so that line numbers stay as they are.
  const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(filename, "utf8")}\n})`;
  return new vm.Script(source, {
    filename,
    ...(cachedData ? { cachedData } : {}),
  });
}

function run(filename: string, script: vm.Script): Program {
  const module = { exports: {} as Program };
  script.runInThisContext()(module.exports, createRequire(filename), module, filename, dirname(filename));
  return module.exports;
}
