import { closeSync, openSync, readSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";

/** A server on 127.0.0.1 with `count` client connections to it, all from this process. */
export interface Loopback {
  port: number;
  /** The local ports of the client sockets. */
  clientPorts: number[];
  close(): Promise<void>;
}

/**
 * Opens `count` connections on loopback and waits until each is established (its `connect`
 * event: the kernel has the socket in its table by then). Enough of them make /proc/net/tcp
 * many pages long, whatever else the host runs.
 */
export async function openLoopback(count: number): Promise<Loopback> {
  const accepted: Socket[] = [];
  const server = createServer((socket) => void accepted.push(socket));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = (server.address() as { port: number }).port;
  const clients: Socket[] = [];
  const close = async () => {
    for (const socket of [...clients, ...accepted]) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  try {
    await Promise.all(
      Array.from({ length: count }, () => {
        const client = createConnection({ host: "127.0.0.1", port });
        clients.push(client);
        return new Promise<void>((resolve, reject) => {
          client.once("connect", resolve);
          client.once("error", reject);
        });
      }),
    );
  } catch (error) {
    await close();
    throw error;
  }
  return { port, clientPorts: clients.map((c) => c.localPort as number), close };
}

/** The local ports of the rows that one read(2) of /proc/net/tcp returns: its first page. */
export function firstPagePorts(): Set<number> {
  const fd = openSync("/proc/net/tcp", "r");
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    const ports = new Set<number>();
    for (const line of buffer.toString("utf8", 0, n).split("\n").slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (local) ports.add(Number.parseInt(local.split(":")[1] ?? "", 16));
    }
    return ports;
  } finally {
    closeSync(fd);
  }
}
