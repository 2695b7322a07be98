import { CoralError, discoveryTtls, joinAnswerSchema } from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import { verifySignedRequest } from "../auth/signature.js";
import { answerJoin, openDb } from "../db/store.js";
import type { AppEnv } from "../env.js";
import { parseJsonBody, readBody, requireJsonContentType } from "../http/body.js";
import { addRowsWritten, joinIdParam, meshIdParam } from "../http/params.js";
import { toAnswerRecord } from "../http/records.js";

/** The coordinator answers a join request, once. Posting the same answer again is harmless. */
export async function putAnswer(c: Context<AppEnv>): Promise<Response> {
  const meshId = meshIdParam(c);
  const joinId = joinIdParam(c);
  requireJsonContentType(c.req.raw);
  const bytes = await readBody(c.req.raw);
  const now = Date.now();
  const { parts } = await verifySignedRequest(c.req.raw, meshId, bytes, now);
  const { value } = parseJsonBody(bytes, joinAnswerSchema);
  const answer = {
    sealed: value.sealed,
    signedAt: parts.timestamp,
    answeredAt: now,
    expiresAt: now + discoveryTtls.joinAnswerSeconds * 1000,
  };
  const { applied, join, rowsWritten } = await answerJoin(openDb(c.env.DB), meshId, joinId, answer);
  addRowsWritten(c, rowsWritten);
  if (!join) throw joinNotFound(joinId);
  if (!applied) {
    if (join.answerSignedAt !== null && parts.timestamp <= join.answerSignedAt) {
      throw new CoralError("signature_replayed", "An answer signed at the same time or later is already stored; sign a new request.");
    }
    if (join.answer !== value.sealed) {
      throw new CoralError("answer_exists", "This join request already has a different answer; an answer cannot be replaced.");
    }
  }
  return c.json(toAnswerRecord({ ...join, answer: join.answer ?? value.sealed, answeredAt: join.answeredAt ?? now }));
}

export function joinNotFound(joinId: string): CoralError {
  return new CoralError(
    "join_not_found",
    `No live join request ${joinId} in this mesh: it never existed or expired (join requests live ${discoveryTtls.joinRequestSeconds / 60} min). Start the join again.`,
  );
}
