// An upload service that stores files in its data directory. SIGUSR2 starts a client that
// uploads `bytesPerSecond` without end; when the disk is full, writes fail and are retried.

import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";

const RELEASE = /* release */ {};
const { port = 8080, dataDir, bytesPerSecond = 2 * 1024 * 1024 } = RELEASE;
createServer((_req, res) => res.writeHead(200).end("ok\n")).listen(port, "0.0.0.0");

let n = 0;
process.on("SIGUSR2", () => {
  console.error("uploads arriving");
  const chunk = Buffer.alloc(bytesPerSecond / 4, 7);
  setInterval(() => {
    writeFile(join(dataDir, `upload-${++n}.bin`), chunk).catch((error) => console.error(`store failed: ${error.code}`));
  }, 250);
});
