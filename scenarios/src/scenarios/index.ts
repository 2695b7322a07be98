/** Every scenario, in the order a run takes them: faults first, then the controls. */
import type { Scenario } from "../scenario.js";
import controlBatch from "./control-batch.js";
import controlCron from "./control-cron.js";
import controlDeploys from "./control-deploys.js";
import controlWorkerPool from "./control-worker-pool.js";
import cpuSaturation from "./cpu-saturation.js";
import dependencyDown from "./dependency-down.js";
import deployCrashPassive from "./deploy-crash-passive.js";
import deployCrashSdk from "./deploy-crash-sdk.js";
import diskFull from "./disk-full.js";
import healthFlapping from "./health-flapping.js";
import memoryLeak from "./memory-leak.js";
import oomKill from "./oom-kill.js";

export const SCENARIOS: readonly Scenario[] = [
  deployCrashSdk,
  deployCrashPassive,
  healthFlapping,
  dependencyDown,
  oomKill,
  memoryLeak,
  cpuSaturation,
  diskFull,
  controlDeploys,
  controlCron,
  controlWorkerPool,
  controlBatch,
];
