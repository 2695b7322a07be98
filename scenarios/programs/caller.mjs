// A service that serves HTTP and keeps a pooled connection to its database, querying it every
// second. When the database refuses three times in a row it gives up and exits (status 1),
// for its supervisor to restart it, as services without a retry policy do.
import { createServer as createHttpServer } from "node:http";
import { connect } from "node:net";

const RELEASE = /* release */ {};
const { port = 8080, dbHost = "127.0.0.1", dbPort = 5432, failuresBeforeExit = 3 } = RELEASE;

let failures = 0;
let socket;
let pending;
const open = () =>
  new Promise((resolve, reject) => {
    const s = connect(dbPort, dbHost);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });

async function query() {
  if (!socket || socket.destroyed) {
    socket = await open();
    socket.on("error", () => {});
    socket.on("close", () => {
      socket = undefined;
      pending?.reject(new Error("connection closed"));
      pending = undefined;
    });
    socket.on("data", () => {
      pending?.resolve();
      pending = undefined;
    });
  }
  await new Promise((resolve, reject) => {
    pending = { resolve, reject };
    socket.write("GET orders:recent\n");
    setTimeout(() => reject(new Error("query timed out")), 2_000);
  });
}

setInterval(async () => {
  try {
    await query();
    failures = 0;
  } catch (error) {
    failures++;
    console.error(`database: ${error.message} (${failures} in a row)`);
    if (failures >= failuresBeforeExit) process.exit(1);
  }
}, 1_000);

createHttpServer((_req, res) => res.writeHead(200).end("ok\n")).listen(port, "0.0.0.0");
