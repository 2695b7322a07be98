/**
 * `coral export [--since 24h] > dump.json`: the coordinator's GET /v1/export passed through
 * to stdout as it arrives (sdk-proto `exportDocumentSchema`), with progress on stderr. The
 * document's last field counts what it holds; without it the export was cut short.
 */
import { CoralError, exportDocumentSchema } from "@coral-mesh/sdk-proto";
import { ApiClient, type ApiTarget } from "./api-client.js";
import { humanSpan, isoTime } from "./format.js";
import { formatValue, sinceTime } from "./model-commands.js";
import type { ExitCode, Io } from "./output.js";

const PROGRESS_EVERY_MS = 1_000;
const totalsSchema = exportDocumentSchema.shape.totals;

export async function exportDump(options: ApiTarget & { since?: string }, io: Io, clock: () => number = Date.now): Promise<ExitCode> {
  const started = clock();
  const since = sinceTime(options.since ?? "24h", started);
  const client = ApiClient.locate(options);
  const response = await client.open(`/v1/export?since=${since}`);
  if (!response.body) throw new CoralError("export_incomplete", "The coordinator answered the export without a body.");
  const write = io.write ?? (async (text: string) => io.out(text));
  const decoder = new TextDecoder();
  let bytes = 0;
  let tail = "";
  let reported = started;
  try {
    for await (const chunk of response.body) {
      const text = decoder.decode(chunk, { stream: true });
      bytes += chunk.byteLength;
      tail = (tail + text).slice(-4_096);
      await write(text);
      const at = clock();
      if (at - reported >= PROGRESS_EVERY_MS) {
        reported = at;
        io.err(`coral export: ${formatValue(bytes, "bytes")} so far (${humanSpan(at - started)})\n`);
      }
    }
  } catch (error) {
    throw new CoralError(
      "export_incomplete",
      `The coordinator stopped answering after ${formatValue(bytes, "bytes")} (${error instanceof Error ? error.message : String(error)}): the dump is incomplete; run the export again.`,
    );
  }
  const rest = decoder.decode();
  if (rest) await write(rest);
  const totals = totalsSchema.safeParse(JSON.parse(/"totals":(\{[^{}]*\})\}\s*$/.exec(tail + rest)?.[1] ?? "null"));
  if (!totals.success) {
    throw new CoralError(
      "export_incomplete",
      `The export ended after ${formatValue(bytes, "bytes")} without its totals (the coordinator failed midway; see its log): the dump is incomplete; run it again.`,
    );
  }
  const t = totals.data;
  io.err(
    `coral export: ${t.services} services, ${t.edges} edges, ${t.findings} findings and ${t.events} events since ${isoTime(since)} (${formatValue(bytes, "bytes")} in ${humanSpan(clock() - started)})\n`,
  );
  return 0;
}
