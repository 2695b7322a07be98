/**
 * POST /v1/ask: a question, answered as Server-Sent Events, one AskStreamMessage each, named
 * by its type; the last is `done` or `error`. What can be refused before the answer starts (a
 * bad body, a model string naming no provider, a conversation no longer kept, a key file others
 * can read) is an ordinary error response. A client that goes away aborts the model's call.
 */
import { type AskStreamMessage, askRequestSchema, CoralError, describeIssues, issueDetails } from "@coral-mesh/sdk-proto";
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { AskService } from "../../ask/service.js";

export function askPost(app: Hono, ask: AskService): void {
  app.post("/v1/ask", async (c) => {
    const parsed = askRequestSchema.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) {
      throw new CoralError("invalid_body", `${describeIssues(parsed.error)}.`, { details: { issues: issueDetails(parsed.error) } });
    }
    const prepared = ask.prepare(parsed.data);
    return streamSSE(c, async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort(new Error("the client went away")));
      // Writes are queued so that messages keep their order while the model streams.
      let writing: Promise<unknown> = Promise.resolve();
      const send = (message: AskStreamMessage) => {
        writing = writing.then(() =>
          abort.signal.aborted ? undefined : stream.writeSSE({ event: message.type, data: JSON.stringify(message) }),
        );
      };
      try {
        const answer = await prepared.run(send, abort.signal);
        send({ type: "done", answer });
      } catch (error) {
        if (!abort.signal.aborted) {
          const coral =
            error instanceof CoralError ? error : new CoralError("internal_error", "The coordinator failed unexpectedly; see its log.");
          if (coral.code === "internal_error") console.error(error);
          send({ type: "error", code: coral.code, message: coral.message });
        }
      }
      await writing;
    });
  });
}
