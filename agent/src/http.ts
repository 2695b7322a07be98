/**
 * The agent's requests to discovery, through `node:http` and `node:https` rather than `fetch`.
 * Node's `fetch` is undici, whose HTTP parser is WebAssembly: the first request compiles it,
 * which took the agent's RSS from 75 MB to 104 MB for a moment and left it 20 MB larger for
 * good, for the two or three small requests of a join.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { HttpTransport } from "@coral-mesh/sdk-proto";

/** Discovery's answers are small; a larger one is refused rather than buffered. */
const MAX_ANSWER_BYTES = 1 << 20;

export const nodeHttpTransport: HttpTransport = (exchange) =>
  new Promise((resolve, reject) => {
    const url = new URL(exchange.url);
    const send = url.protocol === "https:" ? httpsRequest : url.protocol === "http:" ? httpRequest : undefined;
    if (!send) {
      reject(new Error(`its URL must start with http: or https:, not ${url.protocol}`));
      return;
    }
    const headers: Record<string, string | number> = { ...exchange.headers };
    if (exchange.body !== undefined) headers["content-length"] = Buffer.byteLength(exchange.body);
    const request = send(url, { method: exchange.method, headers, agent: false });
    const timer = setTimeout(() => {
      const error = new Error(`no answer within ${exchange.timeoutMs} ms`);
      error.name = "TimeoutError";
      request.destroy(error);
    }, exchange.timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    request.once("error", fail);
    request.once("response", (response: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) request.destroy(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
        else chunks.push(chunk);
      });
      response.once("error", fail);
      response.once("end", () => {
        clearTimeout(timer);
        resolve({
          status: response.statusCode ?? 0,
          header: (name) => {
            const value = response.headers[name.toLowerCase()];
            return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
          },
          body: Buffer.concat(chunks).toString("utf8"),
        });
      });
    });
    request.end(exchange.body);
  });
