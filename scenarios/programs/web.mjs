// An HTTP service (api, search, ...): answers requests on its port. A release may fail at
// startup, after loading for a while, as a release with a bad migration or config does.
import { createServer } from "node:http";

const RELEASE = /* release */ {};
const { version = "1.0.0", port = 8080, failAtStartupAfterMs } = RELEASE;

let served = 0;
const server = createServer((_req, res) => {
  served++;
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ version, served }));
});
server.listen(port, "0.0.0.0", () => console.log(`listening on ${port} (${version})`));

if (failAtStartupAfterMs !== undefined) {
  setTimeout(() => {
    console.error("migration 0042 failed: column orders.total_cents does not exist");
    process.exit(1);
  }, failAtStartupAfterMs);
}
process.once("SIGTERM", () => server.close(() => process.exit(0)));
