/**
 * What a scenario is: services set up on the lab's hosts, a clean run (the warm-up), then one
 * fault and the root cause the findings engine must rank first; or, for a control, a window of
 * normal behaviour in which no finding of severity warning or above may open.
 *
 * The engine is never told which scenario runs: it sees only what the agents report.
 */
import type { FindingKind } from "@coral-mesh/sdk-proto";
import type { HostName, RunningService, ScenarioLab } from "./lab.js";

export interface ExpectedRoot {
  /** The root cause's service, or null for a host's finding (disk space). */
  service: string | null;
  /** The agent it concerns; checked when given. */
  agent?: HostName;
  kind: FindingKind;
}

/** A signal the store should show once the fault (or the control's behaviour) has happened. */
export type Signal =
  | { event: string; service: string; atLeast?: number; source?: string }
  | { metric: string; service: string; test: "grows" | "above"; value: number }
  | { disk: HostName; usedAbove: number };

export interface ScenarioContext {
  lab: ScenarioLab;
  /** Prints a progress line under the scenario's name. */
  log(line: string): void;
  /** The services started by this scenario so far, by name. */
  services: Map<string, RunningService>;
}

interface ScenarioBase {
  name: string;
  /** One line: what runs and what goes wrong. */
  description: string;
  /** Whether the service at fault embeds the Coral SDK (accuracy is counted separately). */
  via: "sdk" | "passive";
  /** Starts the scenario's services. */
  setup(ctx: ScenarioContext): Promise<void>;
  /** How long it runs clean before the fault (or before the control's window). */
  warmupMs: number;
  /** What the store should show, checked at the end (a check of the lab, not of the engine). */
  signals?: Signal[];
  /** Undoes what stopping its processes does not (files left on a volume). */
  teardown?(ctx: ScenarioContext): Promise<void>;
}

export interface FaultScenario extends ScenarioBase {
  expect: ExpectedRoot;
  fault(ctx: ScenarioContext): Promise<void>;
  /** How long after the fault the expected top-1 may take (90 s when absent). */
  timeoutMs?: number;
}

export interface ControlScenario extends ScenarioBase {
  control: true;
  /** The services whose findings count against it, and the hosts whose own findings are reported. */
  watches: { services: string[]; agents: HostName[] };
  /** How long its normal behaviour runs after the warm-up. */
  windowMs: number;
  /** What happens at the start of the window (a deploy), if anything does. */
  act?(ctx: ScenarioContext): Promise<void>;
}

export type Scenario = FaultScenario | ControlScenario;

export const isControl = (s: Scenario): s is ControlScenario => "control" in s;

export const DEFAULT_TIMEOUT_MS = 90_000;
