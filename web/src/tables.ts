// API answers turned into the one table every insight shows (and exports): pure, no DOM.
import type {
  AnyQuery,
  AnyResult,
  FunnelStep,
  FunnelsResult,
  InsightKind,
  LifecycleResult,
  PathsResult,
  RetentionQuery,
  RetentionResult,
  SessionsResult,
  StickinessResult,
  TrendsResult,
} from "./types";
import { LIFECYCLE_STATUSES } from "./types";
import { toCsv } from "./csv";

export interface TableRow {
  label: string;
  cells: string[];
}

export interface TableModel {
  title: string;
  columns: string[];
  rows: TableRow[];
}

/** A cell's text: exactly String() of the API's value, null/undefined as empty. */
export function cellText(value: unknown): string {
  return value === null || value === undefined ? "" : String(value);
}

export function breakdownLabel(value: unknown): string {
  return value === "" ? "(none)" : cellText(value);
}

function sameLabels(a: unknown[], b: unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => String(x) === String(b[i]));
}

/** Trends' answer, or stickiness' (the same shape, its series without breakdown_value). */
export function trendsTable(result: TrendsResult | StickinessResult): TableModel {
  const series = result.series ?? [];
  const first = series[0]?.labels ?? [];
  const aligned = series.every((s) => sameLabels(s.labels, first));
  if (aligned) {
    return {
      title: "Series",
      columns: first.map(cellText),
      rows: series.map((s) => ({ label: seriesLabel(s), cells: first.map((_, i) => cellText(s.values[i])) })),
    };
  }
  // Series with different buckets (distribution, say): one column per label seen, in order of appearance.
  const columns: string[] = [];
  for (const s of series) for (const label of s.labels) if (!columns.includes(String(label))) columns.push(String(label));
  return {
    title: "Series",
    columns,
    rows: series.map((s) => {
      const byLabel = new Map(s.labels.map((label, i) => [String(label), s.values[i]]));
      return { label: seriesLabel(s), cells: columns.map((c) => cellText(byLabel.get(c))) };
    }),
  };
}

export function seriesLabel(s: { event: string; breakdown_value?: unknown }): string {
  return s.breakdown_value === null || s.breakdown_value === undefined
    ? s.event
    : `${s.event} · ${breakdownLabel(s.breakdown_value)}`;
}

export const FUNNEL_COLUMNS = [
  "count",
  "conversion_from_first",
  "conversion_from_previous",
  "median_seconds_from_previous",
] as const;

function funnelRows(steps: FunnelStep[], prefix: string): TableRow[] {
  return steps.map((step, i) => ({
    label: `${prefix}${i + 1}. ${step.event}`,
    cells: FUNNEL_COLUMNS.map((c) => cellText(step[c])),
  }));
}

export function funnelsTable(result: FunnelsResult): TableModel {
  const rows = funnelRows(result.steps ?? [], "");
  for (const b of result.breakdowns ?? []) rows.push(...funnelRows(b.steps, `${cellText(b.breakdown_value)} · `));
  return { title: "Step", columns: [...FUNNEL_COLUMNS], rows };
}

export function retentionTable(result: RetentionResult, query?: Partial<RetentionQuery>): TableModel {
  const cohorts = result.cohorts ?? [];
  const width =
    typeof query?.periods === "number"
      ? query.periods + 1
      : Math.max(0, ...cohorts.map((c) => c.values.length));
  const periods = Array.from({ length: width }, (_, i) => String(i));
  return {
    title: "Cohort",
    columns: ["size", ...periods],
    rows: cohorts.map((c) => ({
      label: c.date,
      cells: [cellText(c.size), ...periods.map((_, i) => cellText(c.values[i]))],
    })),
  };
}

export function pathsTable(result: PathsResult): TableModel {
  return {
    title: "Edge",
    columns: ["value"],
    rows: (result.edges ?? []).map((e) => ({ label: `${e.source} → ${e.target}`, cells: [cellText(e.value)] })),
  };
}

export const SESSION_MEASURES = ["sessions", "avg_duration_seconds", "bounce_rate"] as const;

export function sessionsTable(result: SessionsResult): TableModel {
  const labels = result.labels ?? [];
  return {
    title: "Measure",
    columns: labels.map(cellText),
    rows: SESSION_MEASURES.map((m) => ({ label: m, cells: labels.map((_, i) => cellText(result[m]?.[i])) })),
  };
}

/** A row per status (new, returning, resurrecting, dormant), a column per interval. */
export function lifecycleTable(result: LifecycleResult): TableModel {
  const labels = result.labels ?? [];
  return {
    title: "Status",
    columns: labels.map(cellText),
    rows: LIFECYCLE_STATUSES.map((s) => ({ label: s, cells: labels.map((_, i) => cellText(result[s]?.[i])) })),
  };
}

export function insightTable(kind: InsightKind, result: AnyResult, query?: AnyQuery): TableModel {
  switch (kind) {
    case "trends":
      return trendsTable(result as TrendsResult);
    case "funnels":
      return funnelsTable(result as FunnelsResult);
    case "retention":
      return retentionTable(result as RetentionResult, query as RetentionQuery | undefined);
    case "paths":
      return pathsTable(result as PathsResult);
    case "sessions":
      return sessionsTable(result as SessionsResult);
    case "stickiness":
      return trendsTable(result as StickinessResult);
    case "lifecycle":
      return lifecycleTable(result as LifecycleResult);
  }
}

/** The CSV export: the header row, then each body row, exactly as the table shows them. */
export function tableCsv(table: TableModel): string {
  return toCsv([[table.title, ...table.columns], ...table.rows.map((r) => [r.label, ...r.cells])]);
}
