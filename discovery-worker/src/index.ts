import { createApp } from "./app.js";
import { deleteExpired, openDb } from "./db/store.js";
import type { Env } from "./env.js";
import { refusalCounter } from "./refusals.js";

export { RelayRoom } from "./relay/room.js";

const app = createApp();

export default {
  fetch: app.fetch,

  /** Cron (wrangler.toml `triggers.crons`): delete expired rows, record refusal counts. */
  async scheduled(controller, env) {
    const db = openDb(env.DB);
    const now = controller.scheduledTime;
    const deleted = await deleteExpired(db, now);
    await refusalCounter.flush(db, now);
    console.log(`cleanup: deleted ${deleted.meshes} expired coordinator records and ${deleted.joins} expired join requests`);
  },
} satisfies ExportedHandler<Env>;
