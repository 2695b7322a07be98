/**
 * `coral top`: the services with their health, CPU and memory, and the open findings, redrawn
 * as the API is polled. Loaded only when run, so the other commands never load ink or React.
 * Into a pipe or a file it prints the view once and exits.
 */
import type { FindingsResponse, LatestMetricsResponse, ServicesResponse } from "@coral-mesh/sdk-proto";
import { Box, render, Text, useApp, useInput, useStdout } from "ink";
import { createElement as h, useEffect, useState } from "react";
import { ApiClient, type ApiTarget } from "./api-client.js";
import type { ExitCode, Io } from "./output.js";
import {
  cells,
  countsLine,
  findingLine,
  HEADER,
  type SortOrder,
  sortOrders,
  sortRows,
  type TopSnapshot,
  topRows,
  topText,
} from "./top-view.js";

const FINDINGS_SHOWN = 8;

async function snapshot(client: ApiClient): Promise<TopSnapshot> {
  const [services, latest, findings] = await Promise.all([
    client.request<ServicesResponse>("GET", "/v1/services"),
    client.request<LatestMetricsResponse>("GET", "/v1/metrics/latest"),
    client.request<FindingsResponse>("GET", "/v1/findings?limit=100"),
  ]);
  return { services: services.services, samples: latest.samples, findings: findings.findings, at: Date.now() };
}

export async function top(options: ApiTarget & { json?: boolean; intervalMs?: number }, io: Io): Promise<ExitCode> {
  const client = ApiClient.locate(options);
  const first = await snapshot(client);
  if (options.json) {
    io.out(`${JSON.stringify(first, null, 2)}\n`);
    return 0;
  }
  if (!process.stdout.isTTY || !process.stdin.isTTY) {
    io.out(topText(first));
    return 0;
  }
  const app = render(h(Top, { client, first, intervalMs: options.intervalMs ?? 2_000 }), { exitOnCtrlC: true });
  await app.waitUntilExit();
  return 0;
}

/** Widths of the columns, from the header and every row, so the table does not jump as values change. */
function widths(rows: string[][]): number[] {
  return HEADER.map((header, i) => Math.max(header.length, ...rows.map((r) => (r[i] ?? "").length)));
}

const line = (row: string[], w: number[]) => row.map((cell, i) => cell.padEnd(w[i] ?? 0)).join("  ");

const severityColor = { critical: "red", warning: "yellow", info: "blue" } as const;

function Top(props: { client: ApiClient; first: TopSnapshot; intervalMs: number }) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const [data, setData] = useState(props.first);
  const [error, setError] = useState<string | null>(null);
  const [order, setOrder] = useState<SortOrder>("name");
  const [selected, setSelected] = useState(0);

  useEffect(() => {
    let stopped = false;
    const timer = setInterval(() => {
      snapshot(props.client).then(
        (next) => {
          if (stopped) return;
          setData(next);
          setError(null);
        },
        (e: unknown) => {
          if (!stopped) setError(e instanceof Error ? e.message : String(e));
        },
      );
    }, props.intervalMs);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [props.client, props.intervalMs]);

  const rows = sortRows(topRows(data), order);
  const last = Math.max(rows.length - 1, 0);
  const at = Math.min(selected, last);

  useInput((input, key) => {
    if (input === "q" || key.escape) exit();
    else if (key.downArrow || input === "j") setSelected(Math.min(at + 1, last));
    else if (key.upArrow || input === "k") setSelected(Math.max(at - 1, 0));
    else if (input === "s") setOrder(sortOrders[(sortOrders.indexOf(order) + 1) % sortOrders.length] as SortOrder);
  });

  const findings = data.findings.slice(0, FINDINGS_SHOWN);
  // Room for the services: the terminal less the header lines, the findings and the key line.
  const room = Math.max((stdout.rows || 24) - 6 - (findings.length > 0 ? findings.length + 2 : 0), 3);
  const start = Math.min(Math.max(at - room + 1, 0), Math.max(rows.length - room, 0));
  const shown = rows.slice(start, start + room);
  const w = widths(rows.map(cells));
  const findingWidths = [0, 1].map((i) => Math.max(...findings.map((f) => (findingLine(f)[i + 1] ?? "").length)));

  return h(
    Box,
    { flexDirection: "column" },
    h(
      Text,
      null,
      h(Text, { bold: true }, "coral top"),
      `  ${data.services.length} services, ${countsLine(data.findings)}  ·  sorted by ${order}  ·  ${new Date(data.at).toISOString().slice(11, 19)}Z`,
    ),
    h(
      Text,
      { bold: true },
      line(
        HEADER.map((x) => x.toUpperCase()),
        w,
      ),
    ),
    rows.length === 0 ? h(Text, { dimColor: true }, "No services yet.") : null,
    ...shown.map((row, i) => {
      const index = start + i;
      const color = row.health === "not_serving" ? "red" : row.worst ? severityColor[row.worst] : undefined;
      return h(Text, { key: row.name, inverse: index === at, ...(color ? { color } : {}) }, line(cells(row), w));
    }),
    findings.length > 0 ? h(Text, { bold: true }, "\nOPEN FINDINGS") : null,
    ...findings.map((f) => {
      const [, ...rest] = findingLine(f);
      return h(
        Text,
        { key: f.id, wrap: "truncate-end" },
        h(Text, { color: severityColor[f.severity] }, f.severity.padEnd(10)),
        rest.map((cell, i) => (i === rest.length - 1 ? cell : cell.padEnd(findingWidths[i] ?? 0))).join("  "),
      );
    }),
    h(Text, { dimColor: true }, `\nq quit  ↑↓/j k move  s sort (${order})`),
    error ? h(Text, { color: "red" }, `the last refresh failed: ${error}`) : null,
  );
}
