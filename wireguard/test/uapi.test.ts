/**
 * The client side of wireguard-go's socket protocol, against a server on a UNIX socket that
 * answers as wireguard-go does and can be told to misbehave. A real wireguard-go is behind
 * every request in interface.test.ts; this covers what it does not do on demand: close an idle
 * connection, refuse a request, or not answer.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UapiConnection } from "../src/uapi.js";

describe("a connection to wireguard-go's socket", () => {
  let dir: string;
  let path: string;
  let server: Server;
  let connections: Socket[];
  let requests: string[];
  /** How the server answers each request: "ok", "refuse" (errno=22), "hang", or close the connection once. */
  let behaviour: "ok" | "refuse" | "hang" | "close-once";

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "coral-uapi-"));
    path = join(dir, "wg.sock");
    connections = [];
    requests = [];
    behaviour = "ok";
    server = createServer((socket) => {
      connections.push(socket);
      let buffer = "";
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
          const request = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          requests.push(request);
          if (behaviour === "close-once") {
            behaviour = "ok";
            socket.destroy();
          } else if (behaviour === "refuse") socket.write("errno=22\n\n");
          else if (behaviour === "ok") socket.write(request === "get=1" ? `listen_port=${requests.length}\nerrno=0\n\n` : "errno=0\n\n");
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
  });

  afterEach(async () => {
    for (const socket of connections) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends request after request on one connection, in order", async () => {
    const connection = new UapiConnection(path);
    const answers = await Promise.all([
      connection.request(["get=1"]),
      connection.request(["set=1", "listen_port=9"]),
      connection.request(["get=1"]),
    ]);
    expect(answers).toEqual([["listen_port=1"], [], ["listen_port=3"]]);
    expect(requests).toEqual(["get=1", "set=1\nlisten_port=9", "get=1"]);
    expect(connections).toHaveLength(1);
    connection.close();
  });

  it("opens a new connection when wireguard-go closed the one it had (a restart, say)", async () => {
    const connection = new UapiConnection(path);
    await connection.request(["get=1"]);
    const [first] = connections;
    first?.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(await connection.request(["get=1"])).toEqual(["listen_port=2"]);
    expect(connections).toHaveLength(2);
    connection.close();
  });

  it("sends a request once more, on a new connection, when the one it went out on fails under it", async () => {
    const connection = new UapiConnection(path);
    await connection.request(["get=1"]);
    behaviour = "close-once"; // the kept connection dies with this request in flight; a new one answers
    const retried = connection.request(["get=1"]);
    await expect(retried).resolves.toEqual(["listen_port=3"]);
    expect(connections).toHaveLength(2);
    connection.close();
  });

  it("does not send a refused request again, and says what wireguard-go answered", async () => {
    const connection = new UapiConnection(path);
    await connection.request(["get=1"]);
    behaviour = "refuse";
    await expect(connection.request(["set=1", "listen_port=99999"])).rejects.toMatchObject({ code: "22", answered: true });
    expect(requests).toHaveLength(2);
    behaviour = "ok";
    expect(await connection.request(["get=1"])).toEqual(["listen_port=3"]);
    connection.close();
  });

  it("gives up on a request that is not answered in time, once", async () => {
    const connection = new UapiConnection(path);
    await connection.request(["get=1"]);
    behaviour = "hang";
    await expect(connection.request(["get=1"], 100)).rejects.toMatchObject({ code: "ETIMEDOUT" });
    expect(requests).toHaveLength(2);
    connection.close();
  });

  it("fails plainly where no wireguard-go listens", async () => {
    const connection = new UapiConnection(join(dir, "absent.sock"));
    await expect(connection.request(["get=1"])).rejects.toMatchObject({ code: "ENOENT" });
  });
});
