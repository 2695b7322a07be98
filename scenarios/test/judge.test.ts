import type { Finding } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { controlFalsePositives, controlHostFindings, isExpected, rank, type ScenarioResult, topOf, totals } from "../src/judge.js";
import { renderRelease } from "../src/lab.js";
import { formatTable, formatTotals, HEADER, resultRows } from "../src/table.js";

const finding = (over: Partial<Finding> & { id: string }): Finding => ({
  kind: "crash-loop",
  severity: "warning",
  state: "open",
  service: "api",
  agent: "host-a",
  rootCause: { service: "api", agent: "host-a", kind: over.kind ?? "crash-loop" },
  summary: "api restarts",
  confidence: 0.6,
  evidence: { events: [], metrics: [], edges: [], checks: [], notes: [] },
  recommendation: { action: "investigate", step: "look" },
  openedAt: 1_000,
  updatedAt: 1_000,
  resolvedAt: null,
  since: 1_000,
  ...over,
});

const result = (over: Partial<ScenarioResult> & { name: string }): ScenarioResult => ({
  via: "passive",
  control: false,
  expected: { service: "api", kind: "bad-deploy" },
  top: null,
  right: false,
  secondsToFinding: null,
  openedSecondsAfterFault: null,
  falsePositives: [],
  hostFindings: [],
  findings: [],
  signals: [],
  error: null,
  startedAt: 0,
  faultAt: 0,
  endedAt: 0,
  ...over,
});

describe("the top-1", () => {
  it("ranks open first, then severity, then confidence, then the oldest", () => {
    const ranked = rank([
      finding({ id: "resolved", state: "resolved", severity: "critical", confidence: 1 }),
      finding({ id: "info", severity: "info", confidence: 0.99 }),
      finding({ id: "warn-low", confidence: 0.5 }),
      finding({ id: "warn-high-late", confidence: 0.9, openedAt: 2_000 }),
      finding({ id: "warn-high-early", confidence: 0.9, openedAt: 1_500 }),
      finding({ id: "critical", severity: "critical", confidence: 0.1 }),
    ]);
    expect(ranked.map((f) => f.id)).toEqual(["critical", "warn-high-early", "warn-high-late", "warn-low", "info", "resolved"]);
  });

  it("is the first open finding opened since the scenario started, in the coordinator's order", () => {
    const findings = [
      finding({ id: "older", openedAt: 500 }),
      finding({ id: "resolved", state: "resolved", openedAt: 2_000 }),
      finding({ id: "this", openedAt: 2_500 }),
    ];
    expect(topOf(findings, 1_000)?.id).toBe("this");
    expect(topOf(findings, 3_000)).toBeUndefined();
  });

  it("is right when its root cause has the expected service and kind, and agent when one is expected", () => {
    const deploy = finding({ id: "a", kind: "crash-loop", rootCause: { service: "api", agent: "host-a", kind: "bad-deploy" } });
    expect(isExpected({ service: "api", kind: "bad-deploy" }, deploy)).toBe(true);
    expect(isExpected({ service: "api", kind: "crash-loop" }, deploy)).toBe(false);
    expect(isExpected({ service: "db", kind: "bad-deploy" }, deploy)).toBe(false);
    const disk = finding({ id: "d", service: null, agent: "host-c", rootCause: { service: null, agent: "host-c", kind: "host-pressure" } });
    expect(isExpected({ service: null, agent: "host-c", kind: "host-pressure" }, disk)).toBe(true);
    expect(isExpected({ service: null, agent: "host-b", kind: "host-pressure" }, disk)).toBe(false);
    expect(isExpected({ service: null, kind: "host-pressure" }, undefined)).toBe(false);
  });
});

describe("a control's false positives", () => {
  const window = { from: 1_000, to: 5_000 };
  const watches = { services: ["reports", "export"], agents: ["host-c"] };

  it("are its services' findings of severity warning or above opened in its window, and those pointing at them", () => {
    const against = controlFalsePositives(
      [
        finding({ id: "job", service: "export", rootCause: { service: "export", agent: "host-c", kind: "crash-loop" }, openedAt: 2_000 }),
        finding({
          id: "host-cpu",
          service: null,
          agent: "host-c",
          severity: "critical",
          kind: "host-pressure",
          rootCause: { service: "export", agent: "host-c", kind: "cpu-saturation" },
          openedAt: 3_000,
        }),
        finding({
          id: "points-at-it",
          service: "web",
          rootCause: { service: "reports", agent: "host-c", kind: "dependency-down" },
          openedAt: 4_000,
        }),
      ],
      window,
      watches,
    );
    expect(against.map((f) => f.id)).toEqual(["job", "host-cpu", "points-at-it"]);
  });

  it("leave out info, other services, a host's own findings, and what opened outside the window", () => {
    const against = controlFalsePositives(
      [
        finding({ id: "info", service: "export", severity: "info", openedAt: 2_000 }),
        finding({ id: "other", service: "api", openedAt: 2_000 }),
        finding({
          id: "host",
          service: null,
          agent: "host-c",
          rootCause: { service: null, agent: "host-c", kind: "host-pressure" },
          openedAt: 2_000,
        }),
        finding({ id: "before", service: "export", openedAt: 500 }),
        finding({ id: "after", service: "export", openedAt: 6_000 }),
      ],
      window,
      watches,
    );
    expect(against).toEqual([]);
    const host = finding({
      id: "h",
      service: null,
      agent: "host-c",
      rootCause: { service: null, agent: "host-c", kind: "host-pressure" },
      openedAt: 2_000,
    });
    expect(controlHostFindings([host], window, ["host-c"]).map((f) => f.id)).toEqual(["h"]);
    expect(controlHostFindings([host], window, ["host-a"])).toEqual([]);
  });
});

describe("the totals", () => {
  it("meet the targets: 90 % with the SDK, 75 % passive, no control false positive, nothing errored", () => {
    const t = totals([
      result({ name: "a", via: "sdk", right: true }),
      result({ name: "b", right: true }),
      result({ name: "c", right: true }),
      result({ name: "d", right: true }),
      result({ name: "e", right: false }),
      result({ name: "f", control: true, expected: null, right: true }),
    ]);
    expect(t).toMatchObject({ sdk: { right: 1, of: 1 }, passive: { right: 3, of: 4 }, controlFalsePositives: 0, errored: 0, missed: [] });
  });

  it("say which target was missed", () => {
    const fp = { id: "x", kind: "cpu-saturation", severity: "warning", state: "open", service: "rollup", agent: "host-a" };
    const t = totals([
      result({ name: "a", via: "sdk", right: false }),
      result({ name: "b", right: true }),
      result({ name: "c", right: false, error: "the lab broke" }),
      result({
        name: "d",
        control: true,
        expected: null,
        falsePositives: [
          { ...fp, rootCause: { service: "rollup", agent: "host-a", kind: "cpu-saturation" }, confidence: 0.5, summary: "", openedAt: 1 },
        ],
      }),
    ]);
    expect(t.missed).toEqual([
      "SDK top-1 accuracy 0 % < 90 %",
      "passive top-1 accuracy 50 % < 75 %",
      "1 control false positive(s)",
      "1 scenario(s) errored",
    ]);
    expect(formatTotals(t)).toContain("targets missed");
  });
});

describe("the table", () => {
  it("is a Markdown table with a row per scenario", () => {
    const rows = resultRows([
      result({
        name: "deploy-crash-passive",
        right: true,
        secondsToFinding: 7.25,
        askContext: { holds: true, detail: "1 is finding 1 of 1, with its evidence" },
        top: {
          id: "1",
          kind: "crash-loop",
          severity: "critical",
          state: "open",
          service: "api",
          agent: "host-a",
          rootCause: { service: "api", agent: "host-a", kind: "bad-deploy" },
          confidence: 0.62,
          summary: "",
          openedAt: 1,
        },
      }),
      result({ name: "control-cron", control: true, expected: null, right: true }),
    ]);
    expect(rows).toEqual([
      ["deploy-crash-passive", "passive", "api bad-deploy", "api bad-deploy", "yes", "0.62", "7.3 s", "yes"],
      ["control-cron", "passive", "no warning+", "none", "yes", "", "", ""],
    ]);
    const table = formatTable(HEADER, rows).split("\n");
    expect(table).toHaveLength(4);
    expect(new Set(table.map((l) => l.length)).size).toBe(1);
  });
});

describe("a release", () => {
  it("is baked into the program's RELEASE, so that a new release is a new file", () => {
    const source = "const RELEASE = /* release */ {};\nconsole.log(RELEASE.version);\n";
    expect(renderRelease(source, { version: "2.4.1" })).toBe('const RELEASE = {"version":"2.4.1"};\nconsole.log(RELEASE.version);\n');
    expect(renderRelease("plain();\n", { version: "2" })).toBe("plain();\n");
  });
});
