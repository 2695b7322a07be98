/**
 * `coral ask`'s opening context for labs and their tests (`@coral-mesh/coordinator/ask-testing`):
 * built from a coordinator's store opened read-only, beside the coordinator that writes it. An
 * entry of its own, apart from `./testing`, so that harnesses which only start processes do not
 * take in the store and its types.
 */
import { buildAskContext } from "./ask/context.js";
import type { AskContext } from "./ask/tool.js";
import { openStoreReadOnly } from "./store/db.js";

export type { AskContext } from "./ask/tool.js";
export { openStore } from "./store/db.js";

/** The opening context `coral ask` starts from for `question`, from the store at `storePath`. */
export async function askContextOf(storePath: string, question: string, now?: number): Promise<AskContext> {
  const db = openStoreReadOnly(storePath);
  try {
    return await buildAskContext({ db, ...(now === undefined ? {} : { now: () => now }) }, question);
  } finally {
    db.$client.close();
  }
}
