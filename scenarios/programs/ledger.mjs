// A ledger service that imports statements. SIGUSR2 starts an import that holds every
// statement in memory (`chunkBytes` more every 100 ms) until it is done, which it never is
// before the memory limit of its cgroup is reached.
import { createServer } from "node:http";

const RELEASE = /* release */ {};
const { port = 8080, chunkBytes = 2 * 1024 * 1024 } = RELEASE;
createServer((_req, res) => res.writeHead(200).end("ok\n")).listen(port, "0.0.0.0");

const statements = [];
process.on("SIGUSR2", () => {
  console.error("import started");
  setInterval(() => statements.push(Buffer.alloc(chunkBytes, statements.length)), 100);
});
