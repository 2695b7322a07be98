#!/usr/bin/env node
// `npm test`: runs every workspace's tests, then prints one summary line.
// With CORAL_REQUIRE_ALL=1 (set by .ci/run) a skipped test fails the run: suites
// that need root or system packages skip locally, but never in CI.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
// Workspace entries are folders or "folder/*" patterns, as in package.json.
const workspaces = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).workspaces.flatMap((entry) =>
  entry.endsWith("/*")
    ? readdirSync(join(root, entry.slice(0, -2)))
        .map((name) => `${entry.slice(0, -2)}/${name}`)
        .filter((dir) => existsSync(join(root, dir, "package.json")))
    : [entry],
);
const out = mkdtempSync(join(tmpdir(), "coral-test-"));
const totals = { passed: 0, failed: 0, skipped: 0 };
const skipped = [];
const failed = [];
const broken = [];

for (const workspace of workspaces) {
  const pkg = JSON.parse(readFileSync(join(root, workspace, "package.json"), "utf8"));
  if (!pkg.scripts?.test) continue;
  const report = join(out, `${workspace}.json`);
  process.stdout.write(`\n── ${pkg.name} ──\n`);
  const run = spawnSync(
    "npm",
    ["run", "test", "--silent", "-w", workspace, "--", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
  let results;
  try {
    results = JSON.parse(readFileSync(report, "utf8"));
  } catch {
    broken.push(`${pkg.name} (exit ${run.status}, no results)`);
    continue;
  }
  for (const file of results.testResults) {
    for (const test of file.assertionResults) {
      if (test.status === "passed") totals.passed++;
      else if (test.status === "failed") {
        totals.failed++;
        failed.push(`${pkg.name}: ${test.fullName}`);
      } else {
        totals.skipped++;
        skipped.push(`${pkg.name}: ${test.fullName}`);
      }
    }
  }
  // A suite that failed to load has no assertion results but a failed status.
  if (run.status !== 0 && results.numFailedTests === 0) broken.push(`${pkg.name} (exit ${run.status})`);
}
rmSync(out, { recursive: true, force: true });

const requireAll = process.env.CORAL_REQUIRE_ALL === "1";
// The names of what failed come last, so the tail of a long CI log says what broke.
if (failed.length) process.stdout.write(`\nFailed:\n${failed.map((f) => `  ${f}`).join("\n")}\n`);
if (broken.length) process.stdout.write(`\nSuites that did not run cleanly: ${broken.join(", ")}\n`);
if (skipped.length && requireAll)
  process.stdout.write(`\nCORAL_REQUIRE_ALL=1 and these were skipped:\n${skipped.map((s) => `  ${s}`).join("\n")}\n`);
process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`);
process.exit(totals.failed || broken.length || (requireAll && skipped.length) ? 1 : 0);
