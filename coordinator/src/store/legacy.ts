/**
 * Stores made before metric series (migration 0002) kept a row per sample in
 * `metric_samples`. Opening one converts those rows into series and packed frames, one
 * frame per agent and sample time, then drops the table: nothing measured is lost.
 */
import type Database from "better-sqlite3";
import { labelsKey, packSamples } from "./frames.js";

interface LegacySample {
  agent_name: string;
  name: string;
  subject_id: string;
  time: number;
  value: number;
  labels: string;
}

export function convertLegacySamples(sqlite: Database.Database): number {
  const exists = sqlite.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'metric_samples'").get();
  if (!exists) return 0;
  return sqlite.transaction(() => {
    // In pages by rowid (insertion order, so a batch's samples are neighbours): better-sqlite3
    // runs no statement while another is still being iterated.
    const page = sqlite.prepare<[number], LegacySample & { rowid: number }>(
      "SELECT rowid, agent_name, name, subject_id, time, value, labels FROM metric_samples WHERE rowid > ? ORDER BY rowid LIMIT 5000",
    );
    const seriesIds = new Map<string, number>();
    const findSeries = sqlite.prepare<[string, string, string, string], { id: number }>(
      "SELECT id FROM metric_series WHERE agent_name = ? AND subject_id = ? AND name = ? AND labels = ?",
    );
    const insertSeries = sqlite.prepare(
      "INSERT INTO metric_series (agent_name, name, subject_kind, subject_id, labels, source, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
    );
    const touch = sqlite.prepare("UPDATE metric_series SET last_seen_at = max(last_seen_at, ?) WHERE id = ?");
    const insertFrame = sqlite.prepare(
      "INSERT INTO metric_frames (agent_name, start_time, end_time, samples, data) VALUES (?, ?, ?, ?, ?)",
    );
    let frame: { agent: string; time: number; samples: Array<{ seriesId: number; time: number; value: number }> } | undefined;
    const flush = () => {
      if (frame && frame.samples.length > 0)
        insertFrame.run(frame.agent, frame.time, frame.time, frame.samples.length, packSamples(frame.samples, frame.time));
    };
    let converted = 0;
    for (let rows = page.all(0); rows.length > 0; rows = page.all(rows.at(-1)?.rowid ?? 0))
      for (const row of rows) {
        let labels = "{}";
        try {
          labels = labelsKey(JSON.parse(row.labels) as Record<string, string>);
        } catch {}
        const key = `${row.agent_name}\u0000${row.subject_id}\u0000${row.name}\u0000${labels}`;
        let id = seriesIds.get(key);
        if (id === undefined) {
          id = findSeries.get(row.agent_name, row.subject_id, row.name, labels)?.id;
          if (id === undefined) {
            const kind = row.subject_id === "host" ? "host" : row.subject_id ? "service" : "unknown";
            id = Number(insertSeries.run(row.agent_name, row.name, kind, row.subject_id, labels, row.time, row.time).lastInsertRowid);
          }
          seriesIds.set(key, id);
        }
        touch.run(row.time, id);
        if (!frame || frame.agent !== row.agent_name || frame.time !== row.time) {
          flush();
          frame = { agent: row.agent_name, time: row.time, samples: [] };
        }
        frame.samples.push({ seriesId: id, time: row.time, value: row.value });
        converted++;
      }
    flush();
    sqlite.exec("DROP TABLE metric_samples");
    return converted;
  })();
}
