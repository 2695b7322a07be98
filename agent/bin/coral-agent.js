#!/usr/bin/env node
// Committed shim so npm can link the `coral-agent` command before the first build.
await import("../dist/cli.js").catch((error) => {
  if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/cli.js")) {
    process.stderr.write("coral-agent: the agent is not built yet; run `npm run build` in the repository first.\n");
    process.exit(1);
  }
  throw error;
});
