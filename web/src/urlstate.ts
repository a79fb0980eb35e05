// The shareable state of an insight lives in the URL: /insights/<kind>?q=<URL-encoded JSON request body>.
import type { AnyQuery, InsightKind, QueryByKind } from "./types";
import { INSIGHT_KINDS } from "./types";

export function isInsightKind(value: string): value is InsightKind {
  return (INSIGHT_KINDS as string[]).includes(value);
}

export function encodeQuery(query: unknown): string {
  return encodeURIComponent(JSON.stringify(query));
}

export function insightUrl(kind: InsightKind, query: AnyQuery): string {
  return `/insights/${kind}?q=${encodeQuery(query)}`;
}

/** Reads `q` from a location's search string; null when absent or not a JSON object. */
export function decodeQuery(search: string): Record<string, unknown> | null {
  const raw = new URLSearchParams(search).get("q");
  if (raw === null || raw === "") return null;
  try {
    const value = JSON.parse(raw);
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** YYYY-MM-DD of a date in the browser's time zone. */
export function isoDate(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** The last 7 days, today included. */
export function defaultDateRange(today = new Date()): { date_from: string; date_to: string } {
  const from = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6);
  return { date_from: isoDate(from), date_to: isoDate(today) };
}

export function defaultQuery<K extends InsightKind>(kind: K, events: string[], today = new Date()): QueryByKind[K] {
  const first = events[0] ?? "";
  const second = events[1] ?? first;
  const dates = defaultDateRange(today);
  const queries: QueryByKind = {
    trends: { events: [{ event: first }], measure: "totals", interval: "day", ...dates },
    funnels: { steps: [{ event: first }, { event: second }], window_seconds: 86400, ...dates },
    retention: { start_event: first, return_event: "$any", period: "day", periods: 7, ...dates },
    sessions: { interval: "day", ...dates },
    paths: { steps: 4, limit: 50, ...dates },
    stickiness: { events: [{ event: first }], interval: "day", ...dates },
    lifecycle: { event: first, interval: "day", ...dates },
  };
  return queries[kind];
}

/** Where the SDKs send events: the capture service, same host as this page, port 8000. */
export function captureUrl(loc: { hostname: string } = window.location): string {
  return `http://${loc.hostname}:8000`;
}

/** Only same-site paths may be returned to after logging in. */
export function safeReturnPath(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/login")) return "/insights/trends";
  return next;
}
