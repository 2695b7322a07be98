// An HTTP service that embeds the Coral SDK (docs/sdk.md): its name, version and two checks,
// its database and its payment provider. SIGUSR2 makes the provider flaky: the payments check
// fails and recovers every few seconds. A release may fail at startup, as in web.mjs.
import { createServer } from "node:http";
import { startCoralSdk } from "@coral-mesh/sdk";

const RELEASE = /* release */ {};
const { service = "shop", version = "1.0.0", port = 8080, sdkPort = 50151, failAtStartupAfterMs, flapEveryMs = 6_000 } = RELEASE;

let paymentsUp = true;
let _flapping;
const http = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ version })));
http.listen(port, "0.0.0.0");

const coral = await startCoralSdk({
  service,
  version,
  port: sdkPort,
  config: { port, database: { url: "postgres://app:hunter2@10.0.0.5:5432/app", pool: 5 } },
  checks: {
    database: () => ({ ok: true, message: "connected" }),
    payments: () =>
      paymentsUp ? { ok: true, message: "provider answered in 40 ms" } : { ok: false, message: "provider timed out after 2 s" },
  },
  checkIntervalMs: 1_000,
  handleSignals: false,
});
console.log(`${service} ${version} listening on ${port}, sdk on ${sdkPort}`);

// Stopping cleanly (status 0): the SDK tells the agent it stops serving, then the app ends.
process.once("SIGTERM", async () => {
  await coral.close();
  http.close();
  process.exit(0);
});
process.on("SIGUSR2", () => {
  _flapping ??= setInterval(() => {
    paymentsUp = !paymentsUp;
  }, flapEveryMs);
});
if (failAtStartupAfterMs !== undefined) {
  setTimeout(() => {
    console.error("cannot read /etc/app/feature-flags.json: unexpected token } in JSON at position 118");
    process.exit(1);
  }, failAtStartupAfterMs);
}
