/**
 * The findings table as its readers see it: `coral findings`, `coral status`, `coral summary`
 * and their API routes. Rows become sdk-proto `Finding`s; every list is in the ranking order
 * (open first, then critical, warning, info, then confidence descending, then oldest first), so
 * the first finding's `rootCause` is the top-1 root cause.
 */
import {
  CoralError,
  type Evidence,
  type Finding,
  type FindingCounts,
  type FindingKind,
  type Recommendation,
  type RootCause,
  type Severity,
  type SummaryResponse,
  severities,
} from "@coral-mesh/sdk-proto";
import { and, asc, desc, eq, gte, inArray, lte, or, type SQL, sql } from "drizzle-orm";
import type { Store } from "./db.js";
import { type InstanceRow, readModel } from "./read-model.js";
import { agents, events, type FindingRow, findings } from "./schema.js";

export interface FindingsQuery {
  /** With `true`, resolved findings too; else open ones only. */
  all?: boolean | undefined;
  /** Only findings in this state (over `all`). */
  state?: "open" | "resolved" | undefined;
  severity?: Severity | undefined;
  /** The service showing it, or the service its root cause lies in. */
  service?: string | undefined;
  agent?: string | undefined;
  kind?: FindingKind | undefined;
  /** Only findings updated at or after this time. */
  since?: number | undefined;
  limit?: number | undefined;
}

export function findingView(row: FindingRow): Finding {
  return {
    id: row.id,
    kind: row.kind as FindingKind,
    severity: row.severity as Severity,
    state: row.state === "resolved" ? "resolved" : "open",
    service: row.service,
    agent: row.agentName,
    rootCause: row.rootCause as RootCause,
    summary: row.summary,
    confidence: row.confidence,
    evidence: row.evidence as Evidence,
    recommendation: row.recommendation as Recommendation,
    openedAt: row.openedAt,
    updatedAt: row.updatedAt,
    resolvedAt: row.resolvedAt,
    since: row.since,
  };
}

const severityRank = (s: string) => {
  const i = severities.indexOf(s as Severity);
  return i === -1 ? severities.length : i;
};

/** The ranking rule, for findings already read (SQL orders the same way in `listFindings`). */
export function compareFindings(a: Finding, b: Finding): number {
  return (
    (a.state === "open" ? 0 : 1) - (b.state === "open" ? 0 : 1) ||
    severityRank(a.severity) - severityRank(b.severity) ||
    b.confidence - a.confidence ||
    a.openedAt - b.openedAt ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

/**
 * One query per (state, severity) in rank order, each ordered by the
 * `findings_rank` index (state, severity, confidence desc, opened_at): a page of the best
 * findings costs its own length, however many resolved ones the table holds.
 */
export function listFindings(db: Store, query: FindingsQuery = {}): Finding[] {
  const limit = query.limit ?? 200;
  const filters: SQL[] = [];
  if (query.service !== undefined) {
    const rootService = sql`json_extract(${findings.rootCause}, '$.service')`;
    filters.push(or(eq(findings.service, query.service), sql`${rootService} = ${query.service}`) as SQL);
  }
  if (query.agent !== undefined) filters.push(eq(findings.agentName, query.agent));
  if (query.kind !== undefined) filters.push(eq(findings.kind, query.kind));
  if (query.since !== undefined) filters.push(gte(findings.updatedAt, query.since));
  const out: Finding[] = [];
  const states = query.state ? [query.state] : query.all ? ["open", "resolved"] : ["open"];
  for (const state of states) {
    for (const severity of query.severity ? [query.severity] : severities) {
      if (out.length >= limit) return out;
      const rows = db
        .select()
        .from(findings)
        .where(and(eq(findings.state, state), eq(findings.severity, severity), ...filters))
        .orderBy(desc(findings.confidence), asc(findings.openedAt), asc(findings.id))
        .limit(limit - out.length)
        .all();
      for (const row of rows) out.push(findingView(row));
    }
  }
  return out;
}

export function getFinding(db: Store, id: string): Finding {
  const row = db.select().from(findings).where(eq(findings.id, id)).get();
  if (!row) throw new CoralError("finding_not_found", `No finding has id ${id}; \`coral findings --all\` lists them.`);
  return findingView(row);
}

/** The findings of these ids that exist, in the order given (`coral ask`'s answer lists what it cites). */
export function findingsByIds(db: Store, ids: readonly string[]): Finding[] {
  if (ids.length === 0) return [];
  const rows = new Map(
    db
      .select()
      .from(findings)
      .where(inArray(findings.id, [...new Set(ids)]))
      .all()
      .map((row) => [row.id, row]),
  );
  return ids.flatMap((id) => {
    const row = rows.get(id);
    return row ? [findingView(row)] : [];
  });
}

/** Open findings by severity. */
export function findingCounts(db: Store): FindingCounts {
  const counts: FindingCounts = { critical: 0, warning: 0, info: 0 };
  const rows = db
    .select({ severity: findings.severity, n: sql<number>`count(*)` })
    .from(findings)
    .where(eq(findings.state, "open"))
    .groupBy(findings.severity)
    .all();
  for (const row of rows) if (row.severity in counts) counts[row.severity as Severity] = row.n;
  return counts;
}

/**
 * What may have cleared a finding, most telling first: a change to its service (a deploy, new
 * config), else a restart (which clears a leak or a wedged process). Each tier reads the
 * `events_kind_time` index; the statements are prepared once per store, as the summary asks
 * them once per resolved finding.
 */
const FIX_TIERS = [
  ["service.deployed", "service.config"],
  ["process.restarted", "process.started"],
];

const p = sql.placeholder;

function prepareFixes(db: Store) {
  return FIX_TIERS.map((kinds) =>
    db
      .select({ kind: events.kind, time: events.time, attributes: events.attributes })
      .from(events)
      .where(
        and(
          inArray(events.kind, kinds),
          gte(events.time, p("from")),
          lte(events.time, p("to")),
          or(
            eq(events.subjectName, p("service")),
            sql`(${events.agentName} || char(0) || ${events.subjectId}) IN (SELECT value FROM json_each(${p("instances")}))`,
          ),
        ),
      )
      .orderBy(desc(events.time), desc(events.id))
      .limit(1)
      .prepare(),
  );
}

const fixStatements = new WeakMap<Store, ReturnType<typeof prepareFixes>>();

/** The digest of [now - windowMs, now]: what changed, what broke and what fixed it, what stayed quiet, SDK adoption. */
export function summary(db: Store, now: number, windowMs: number): SummaryResponse {
  const since = now - windowMs;
  const inv = readModel(db).inventory();

  const byName = new Map<string, InstanceRow[]>();
  for (const i of inv.instances) {
    const list = byName.get(i.name);
    if (list) list.push(i);
    else byName.set(i.name, [i]);
  }

  // Event times are the observer's clock; the digest, like `coral events`, shows the coordinator's.
  const offsets = new Map(
    db
      .select({ name: agents.name, offset: agents.clockOffsetMs })
      .from(agents)
      .all()
      .map((a) => [a.name, a.offset ?? 0]),
  );
  const deploys = db
    .select()
    .from(events)
    .where(and(eq(events.kind, "service.deployed"), gte(events.time, since), lte(events.time, now)))
    .orderBy(asc(events.time), asc(events.id))
    .all()
    .map((e) => {
      const attributes = parseObject(e.attributes);
      const evidence = parseObject(e.evidence);
      const text = (v: unknown) => (typeof v === "string" && v !== "" ? v : null);
      return {
        service: (e.agentName ? inv.nameOf(e.agentName, e.subjectId) : undefined) ?? e.subjectName ?? e.subjectId,
        agent: e.agentName,
        // The SDK names versions; the passive collector names the executables before and after.
        from: text(attributes.from) ?? text(evidence.oldExe),
        to: text(attributes.to) ?? text(attributes.version) ?? text(attributes.exe) ?? text(evidence.newExe),
        time: e.time - (e.source === "coordinator" ? 0 : (offsets.get(e.agentName ?? "") ?? 0)),
        eventId: e.id,
      };
    });

  const newServices = [...byName]
    .map(([service, rows]) => ({ service, firstSeen: Math.min(...rows.map((r) => r.firstSeenAt)) }))
    .filter((s) => s.firstSeen >= since && s.firstSeen <= now)
    .sort((a, b) => a.firstSeen - b.firstSeen || a.service.localeCompare(b.service));

  // A dependency is new when no edge between the two services was seen before the window.
  const firstSeenOf = new Map<string, { from: string; to: string; firstSeen: number }>();
  for (const e of inv.edges) {
    const to = inv.resolve(e);
    if (to.kind === "coral") continue;
    const from = inv.nameOf(e.agentName, e.fromService) ?? e.fromService;
    const key = `${from}\u0000${to.name}`;
    const known = firstSeenOf.get(key);
    if (!known || e.firstSeenAt < known.firstSeen) firstSeenOf.set(key, { from, to: to.name, firstSeen: e.firstSeenAt });
  }
  const newDependencies = [...firstSeenOf.values()]
    .filter((d) => d.firstSeen >= since && d.firstSeen <= now)
    .sort((a, b) => a.firstSeen - b.firstSeen || a.from.localeCompare(b.from) || a.to.localeCompare(b.to));

  const opened = db
    .select()
    .from(findings)
    .where(and(gte(findings.openedAt, since), lte(findings.openedAt, now)))
    .all()
    .map(findingView)
    .sort(compareFindings);
  const incidents = opened.map((finding) => ({ finding, fixedBy: fixedBy(db, finding, byName.get(finding.service ?? "") ?? []) }));

  // Services with a warning or worse that overlapped the window: opened before its end, not resolved before its start.
  const troubled = new Set(
    db
      .select({ service: findings.service })
      .from(findings)
      .where(
        and(
          inArray(findings.severity, ["critical", "warning"]),
          lte(findings.openedAt, now),
          or(eq(findings.state, "open"), gte(findings.resolvedAt, since)),
        ),
      )
      .all()
      .flatMap((r) => (r.service ? [r.service] : [])),
  );
  const seen = [...byName].filter(([, rows]) => rows.some((r) => r.lastSeenAt >= since)).sort(([a], [b]) => a.localeCompare(b));
  const quiet = seen.map(([name]) => name).filter((name) => !troubled.has(name));

  const sdkServices = seen.filter(([, rows]) => rows.some((r) => r.source === "sdk")).map(([name]) => name);
  const passiveOnly = seen
    .filter(([, rows]) => !rows.some((r) => r.source === "sdk"))
    .map(([name, rows]) => ({ service: name, gain: gainFromSdk(rows) }));

  return {
    since,
    until: now,
    changes: { deploys, newServices, newDependencies },
    incidents,
    quiet,
    open: findingCounts(db),
    sdk: { adoption: seen.length === 0 ? 0 : round(sdkServices.length / seen.length), sdkServices, passiveOnly },
  };
}

/**
 * What cleared a resolved finding, as a person reads it: the last change to its service
 * between its first signal and its resolution (see FIX_TIERS); null while it is open or when
 * its service saw none.
 */
function fixedBy(db: Store, finding: Finding, instances: InstanceRow[]): string | null {
  if (finding.state !== "resolved" || finding.resolvedAt === null || finding.service === null) return null;
  let statements = fixStatements.get(db);
  if (!statements) {
    statements = prepareFixes(db);
    fixStatements.set(db, statements);
  }
  const params = {
    from: Math.min(finding.since, finding.openedAt),
    to: finding.resolvedAt,
    service: finding.service,
    instances: JSON.stringify(instances.map((i) => `${i.agentName}\u0000${i.key}`)),
  };
  for (const statement of statements) {
    const event = statement.get(params);
    if (!event) continue;
    const attributes = parseObject(event.attributes);
    const version =
      typeof attributes.to === "string" ? attributes.to : typeof attributes.version === "string" ? attributes.version : undefined;
    return `${event.kind}${version ? ` ${version}` : ""} at ${new Date(event.time).toISOString().replace(/\.\d{3}Z$/, "Z")}`;
  }
  return null;
}

/** A sentence on what the SDK would show of a service that Coral sees only passively today. */
export function gainFromSdk(rows: readonly InstanceRow[]): string {
  const hasVersion = rows.some((r) => r.version !== null && r.version !== "");
  const listens = rows.some((r) => r.listening.length > 0);
  const gains = [...(hasVersion ? [] : ["versions and deploys by version"]), "health and named checks"];
  const seen = ["restarts", "resource use", ...(listens ? ["listening ports"] : []), ...(hasVersion ? ["versions"] : [])];
  return `${gains.join(", ")} — today only ${seen.slice(0, -1).join(", ")} and ${seen.at(-1)} are seen`;
}

function parseObject(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/**
 * Findings open now or updated at or after `since`, oldest opened first, a page at a time:
 * `after` is the last of the previous page. For `coral export`, which must not hold them all.
 */
export function findingsPage(
  db: Store,
  query: { since: number; after?: { openedAt: number; id: string } | undefined; limit: number },
): Finding[] {
  const after = query.after;
  return db
    .select()
    .from(findings)
    .where(
      and(
        or(eq(findings.state, "open"), gte(findings.updatedAt, query.since)),
        after
          ? or(sql`${findings.openedAt} > ${after.openedAt}`, and(eq(findings.openedAt, after.openedAt), sql`${findings.id} > ${after.id}`))
          : undefined,
      ),
    )
    .orderBy(asc(findings.openedAt), asc(findings.id))
    .limit(query.limit)
    .all()
    .map(findingView);
}
