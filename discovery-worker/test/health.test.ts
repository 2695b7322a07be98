import { exports } from "cloudflare:workers";
import { healthResponseSchema } from "@coral-mesh/sdk-proto";
import { describe, expect, it } from "vitest";
import { expectError, send } from "./helpers.js";

describe("GET /v1/health", () => {
  it("reports liveness, version and the API version", async () => {
    const sent = await send("GET", "/v1/health");
    expect(sent.response.status).toBe(200);
    const body = healthResponseSchema.parse(await sent.json());
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Math.abs(body.time - Date.now())).toBeLessThan(5_000);
    expect(sent.response.headers.get("coral-request-id")).toMatch(/^[0-9a-f]{16}$/);
  });

  it("is served by the Worker's deployed entrypoint", async () => {
    const response = await exports.default.fetch("https://discovery.test/v1/health");
    expect(response.status).toBe(200);
    expect(healthResponseSchema.parse(await response.json()).service).toBe("coral-discovery");
  });

  it("uses the cf-ray id as the request id when there is one", async () => {
    const sent = await send("GET", "/v1/nope", { headers: { "cf-ray": "8f1e2d3c4b5a6978-AMS" } });
    const body = await expectError(sent, 404, "not_found");
    expect(body.requestId).toBe("8f1e2d3c4b5a6978-AMS");
    expect(body.docs).toBe("docs/errors.md#not_found");
  });

  it("answers an unsupported method with 405 and the allowed ones", async () => {
    const sent = await send("DELETE", "/v1/health");
    await expectError(sent, 405, "method_not_allowed");
    expect(sent.response.headers.get("allow")).toBe("GET");
  });
});
