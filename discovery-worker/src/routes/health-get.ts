import type { HealthResponse } from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import packageJson from "../../package.json";
import type { AppEnv } from "../env.js";

export function getHealth(c: Context<AppEnv>): Response {
  const body: HealthResponse = {
    status: "ok",
    service: "coral-discovery",
    version: packageJson.version,
    apiVersion: "v1",
    time: Date.now(),
  };
  return c.json(body);
}
