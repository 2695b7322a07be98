import { CoralError, discoveryLimits, duplicateJsonKey } from "@coral-mesh/sdk-proto";
import type { z } from "zod";

/** Reads at most `maxBodyBytes` of the body; refuses more without buffering it. */
export async function readBody(request: Request): Promise<Uint8Array> {
  const limit = discoveryLimits.maxBodyBytes;
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge();
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

function tooLarge(): CoralError {
  return new CoralError("body_too_large", `Request bodies are limited to ${discoveryLimits.maxBodyBytes} bytes; send a smaller body.`);
}

export function requireJsonContentType(request: Request): void {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new CoralError(
      "unsupported_media_type",
      `Send the body as JSON with "content-type: application/json" (got "${type.slice(0, 80) || "none"}").`,
    );
  }
}

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Decodes and validates a JSON body; the text is returned too, for signature records. */
export function parseJsonBody<S extends z.ZodType>(bytes: Uint8Array, schema: S): { text: string; value: z.infer<S> } {
  let text: string;
  let json: unknown;
  try {
    text = decoder.decode(bytes);
    json = JSON.parse(text);
  } catch {
    throw new CoralError("malformed_json", "The body is not valid UTF-8 JSON; check the request's serialization.");
  }
  const duplicate = duplicateJsonKey(text);
  if (duplicate !== undefined) {
    throw new CoralError(
      "duplicate_json_key",
      `The body has the key ${JSON.stringify(duplicate.slice(0, 64))} twice in one object; send each key once, so that every reader of a signed body sees the same thing.`,
      { details: { key: duplicate.slice(0, 64) } },
    );
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 10).map((issue) => ({ path: issue.path.join("."), message: issue.message }));
    const first = issues[0];
    const where = first?.path ? `${first.path}: ` : "";
    throw new CoralError("invalid_body", `The body does not match this route's schema (${where}${first?.message ?? "invalid"}).`, {
      details: { issues },
    });
  }
  return { text, value: result.data };
}
