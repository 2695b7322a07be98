import { CoralError } from "@coral-mesh/sdk-proto";
import type { Context } from "hono";
import { getLiveJoin, openDb } from "../db/store.js";
import type { AppEnv } from "../env.js";
import { joinIdParam, meshIdParam } from "../http/params.js";
import { toAnswerRecord } from "../http/records.js";
import { joinNotFound } from "./answer-put.js";

/** The agent polls for its sealed answer; the unguessable join id is the capability. */
export async function getAnswer(c: Context<AppEnv>): Promise<Response> {
  const meshId = meshIdParam(c);
  const joinId = joinIdParam(c);
  const join = await getLiveJoin(openDb(c.env.DB), meshId, joinId, Date.now());
  if (!join) throw joinNotFound(joinId);
  if (join.answer === null || join.answeredAt === null) {
    throw new CoralError("answer_pending", "The coordinator has not answered yet; poll again shortly.", {
      headers: { "retry-after": "1" },
    });
  }
  return c.json(toAnswerRecord({ ...join, answer: join.answer, answeredAt: join.answeredAt }));
}
