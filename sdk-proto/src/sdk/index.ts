export type { CheckFunction, CheckOutcome, CheckResultView, CheckState } from "./checks.js";
export { REDACTED, redactConfig } from "./redact.js";
export {
  type CoralSdk,
  type CoralSdkOptions,
  CoralSdkOptionsError,
  DEFAULT_SDK_PORT,
  type ServingStatus,
  startCoralSdk,
} from "./server.js";
