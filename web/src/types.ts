// Shapes of the query API's requests and answers.

export type InsightKind = "trends" | "funnels" | "retention" | "sessions" | "paths" | "stickiness" | "lifecycle";
export const INSIGHT_KINDS: InsightKind[] = ["trends", "funnels", "retention", "paths", "sessions", "stickiness", "lifecycle"];

export type FilterOp =
  | "eq" | "neq" | "in" | "gt" | "gte" | "lt" | "lte" | "contains" | "is_set" | "is_not_set";

export interface Filter {
  type: "event" | "person";
  property: string;
  op: FilterOp;
  value?: unknown;
}

export interface EventSpec {
  event: string;
  filters?: Filter[];
}

export interface Breakdown {
  type: "event" | "person";
  property: string;
  limit?: number;
}

export type Measure =
  | "uniques" | "totals" | "average" | "active_percent" | "sum" | "avg" | "frequency" | "distribution";
export type Interval = "hour" | "day" | "week" | "month";
/** Stickiness and lifecycle count whole intervals: no hour. */
export type CoarseInterval = "day" | "week" | "month";

export interface TrendsQuery {
  events: EventSpec[];
  measure: Measure;
  property?: string;
  interval: Interval;
  date_from: string;
  date_to: string;
  breakdown?: Breakdown;
}

export interface FunnelsQuery {
  steps: EventSpec[];
  window_seconds: number;
  date_from: string;
  date_to: string;
  breakdown?: Breakdown;
}

export interface RetentionQuery {
  start_event: string;
  return_event: string;
  period: "day" | "week";
  periods: number;
  date_from: string;
  date_to: string;
}

export interface SessionsQuery {
  interval: Interval;
  date_from: string;
  date_to: string;
  filters?: Filter[];
}

export interface PathsQuery {
  start_event?: string;
  steps: number;
  date_from: string;
  date_to: string;
  limit: number;
}

export interface StickinessQuery {
  events: EventSpec[];
  interval: CoarseInterval;
  date_from: string;
  date_to: string;
}

export interface LifecycleQuery {
  event: string;
  filters?: Filter[];
  interval: CoarseInterval;
  date_from: string;
  date_to: string;
}

export interface QueryByKind {
  trends: TrendsQuery;
  funnels: FunnelsQuery;
  retention: RetentionQuery;
  sessions: SessionsQuery;
  paths: PathsQuery;
  stickiness: StickinessQuery;
  lifecycle: LifecycleQuery;
}
export type AnyQuery = QueryByKind[InsightKind];

export interface TrendsSeries {
  event: string;
  breakdown_value: string | number | null;
  labels: (string | number)[];
  values: (number | null)[];
}
export interface TrendsResult {
  series: TrendsSeries[];
}

export interface FunnelStep {
  event: string;
  count: number;
  conversion_from_first: number | null;
  conversion_from_previous: number | null;
  median_seconds_from_previous: number | null;
}
export interface FunnelsResult {
  steps: FunnelStep[];
  breakdowns?: { breakdown_value: string | number | null; steps: FunnelStep[] }[];
}

export interface RetentionResult {
  cohorts: { date: string; size: number; values: (number | null)[] }[];
}

export interface SessionsResult {
  labels: (string | number)[];
  sessions: (number | null)[];
  avg_duration_seconds: (number | null)[];
  bounce_rate: (number | null)[];
}

export interface PathsResult {
  edges: { source: string; target: string; value: number }[];
}

/** Per series, values[k - 1] = persons active in exactly k intervals of the range (labels "1", "2", ...). */
export interface StickinessSeries {
  event: string;
  labels: (string | number)[];
  values: (number | null)[];
}
export interface StickinessResult {
  series: StickinessSeries[];
}

export const LIFECYCLE_STATUSES = ["new", "returning", "resurrecting", "dormant"] as const;
export type LifecycleStatus = (typeof LIFECYCLE_STATUSES)[number];

/** Per interval the persons of each status; dormant ones are negative. */
export type LifecycleResult = { labels: (string | number)[] } & Record<LifecycleStatus, (number | null)[]>;

export interface ResultByKind {
  trends: TrendsResult;
  funnels: FunnelsResult;
  retention: RetentionResult;
  sessions: SessionsResult;
  paths: PathsResult;
  stickiness: StickinessResult;
  lifecycle: LifecycleResult;
}
export type AnyResult = ResultByKind[InsightKind];

export interface Project {
  id: string | number;
  name: string;
  api_token: string;
  api_key?: string;
  timezone: string;
}

export interface PropertyDefinition {
  name: string;
  type: "String" | "Numeric" | "Boolean" | "Array" | "Object" | null;
}

export interface Definitions {
  events: string[];
  event_properties: PropertyDefinition[];
  person_properties: PropertyDefinition[];
}

export interface AnalyticsEvent {
  uuid: string;
  event: string;
  distinct_id: string;
  person_id: string | null;
  timestamp: string;
  properties: Record<string, unknown>;
}

export interface PersonSummary {
  id: string;
  distinct_ids: string[];
  properties: Record<string, unknown>;
  is_identified: boolean;
  created_at: string;
}

export interface Person extends PersonSummary {
  version: number;
  events: AnalyticsEvent[];
  next_cursor: string | null;
}

export interface Insight {
  id: string | number;
  name: string;
  kind: InsightKind;
  query: AnyQuery;
  created_at: string;
  updated_at: string;
}

export interface Dashboard {
  id: string | number;
  name: string;
  refresh_seconds: number;
  tiles: { insight_id: string | number; insight: Insight }[];
  created_at: string;
  updated_at: string;
}

/** A dynamic cohort's behavioural filter: did (or did not) do `event` at least `min_count` times in the last `days` days. */
export interface BehavioralFilter {
  type: "behavioral";
  event: string;
  did: boolean;
  min_count: number;
  days: number;
}

export interface PersonFilter {
  type: "person";
  property: string;
  op: FilterOp;
  value?: unknown;
}

export type CohortFilter = PersonFilter | BehavioralFilter;

export interface Cohort {
  id: number;
  name: string;
  kind: "static" | "dynamic";
  /** dynamic */
  match?: "all" | "any";
  filters?: CohortFilter[];
  /** static */
  distinct_ids_count?: number;
  unmatched?: number;
  count: number;
  version: number;
  computed_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface CohortPerson {
  id: string;
  distinct_ids: string[];
  properties: Record<string, unknown>;
}

export type CohortRequest =
  | { name: string; kind: "static"; distinct_ids: string[] }
  | { name: string; kind: "dynamic"; match: "all" | "any"; filters: CohortFilter[] };
