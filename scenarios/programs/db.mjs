// A small database server: a line protocol on a TCP port ("GET key" -> "OK value"). SIGUSR2
// makes it stop listening and drop its clients, as a database does when its listener dies
// or it goes into maintenance, while the process itself stays up.
import { createServer } from "node:net";

const RELEASE = /* release */ {};
const { port = 5432 } = RELEASE;
const clients = new Set();
const server = createServer((socket) => {
  clients.add(socket);
  socket.on("close", () => clients.delete(socket));
  socket.on("error", () => {});
  let buffered = "";
  socket.on("data", (chunk) => {
    buffered += chunk;
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      socket.write(`OK ${line.length}\n`);
      newline = buffered.indexOf("\n");
    }
  });
});
server.listen(port, "0.0.0.0", () => console.log(`db listening on ${port}`));

process.on("SIGUSR2", () => {
  server.close();
  for (const socket of clients) socket.destroy();
  console.error("listener stopped");
});
// Idle but alive: the process stays up after it stops listening.
setInterval(() => {}, 60_000);
