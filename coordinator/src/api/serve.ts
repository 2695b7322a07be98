/** Serving the HTTP API on a socket, and telling the CLI where (`api.json`). */
import type { AddressInfo } from "node:net";
import { CoralError } from "@coral-mesh/sdk-proto";
import { serve } from "@hono/node-server";
import { removeApiFile, writeApiFile } from "../data-dir.js";

export interface ServedApi {
  url: string;
  /** Removes `api.json`, then closes the socket. */
  close(): Promise<void>;
}

/** Listens, then writes `api.json` for the CLI. */
export async function serveApi(options: {
  fetch: (request: Request) => Response | Promise<Response>;
  host: string;
  port: number;
  token: string | undefined;
  dataDir: string;
  meshId: string;
}): Promise<ServedApi> {
  const server = await listen(options.fetch, options.host, options.port);
  const url = `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${server.port}`;
  try {
    writeApiFile(options.dataDir, {
      url,
      pid: process.pid,
      meshId: options.meshId,
      startedAt: Date.now(),
      ...(options.token ? { token: options.token } : {}),
    });
  } catch (error) {
    await server.close();
    throw error;
  }
  return {
    url,
    close: async () => {
      removeApiFile(options.dataDir);
      await server.close();
    },
  };
}

export async function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  hostname: string,
  port: number,
): Promise<{ port: number; close(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, hostname, port }, (info: AddressInfo) =>
      resolve({
        port: info.port,
        close: () => new Promise<void>((done) => server.close(() => done())),
      }),
    );
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "EADDRINUSE"
          ? new CoralError("config_invalid", `The API port ${hostname}:${port} is taken; choose another with --api-port.`)
          : error,
      ),
    );
  });
}
