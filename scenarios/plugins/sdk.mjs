// The built-in `sdk` collector, collecting every 2 s instead of 10 s (see passive.mjs).
import sdk from "@coral-mesh/agent-plugins/sdk";

export default { ...sdk, intervalMs: 2_000 };
