// The built-in `passive` collector, collecting every 2 s instead of 10 s: the agent has no
// option for a plugin's interval yet, and a plugin loaded by path may declare its own.
import passive from "@coral-mesh/agent-plugins/passive";

export default { ...passive, intervalMs: 2_000 };
