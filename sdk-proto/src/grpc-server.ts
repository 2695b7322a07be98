import type { Server } from "@grpc/grpc-js";

/** Lets calls in flight finish for up to `graceMs`, then ends whatever is left. */
export function shutdownGracefully(server: Server, graceMs = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}
