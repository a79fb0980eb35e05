import { describe, expect, it } from "vitest";
import { captureUrl, decodeQuery, defaultDateRange, defaultQuery, insightUrl, safeReturnPath } from "./urlstate";

describe("urlstate", () => {
  it("round-trips a request through the URL", () => {
    const query = { events: [{ event: "sign up & pay", filters: [{ type: "event", property: "$browser", op: "eq", value: "Firefox" }] }], measure: "totals", interval: "day", date_from: "2024-01-01", date_to: "2024-01-07" } as const;
    const url = new URL(insightUrl("trends", query as never), "http://x");
    expect(url.pathname).toBe("/insights/trends");
    expect(decodeQuery(url.search)).toEqual(query);
  });

  it("ignores a missing or broken q", () => {
    expect(decodeQuery("")).toBeNull();
    expect(decodeQuery("?q=%7Bnot json")).toBeNull();
    expect(decodeQuery("?q=%5B1%5D")).toBeNull();
  });

  it("defaults to the last 7 days up to today", () => {
    expect(defaultDateRange(new Date(2024, 2, 3))).toEqual({ date_from: "2024-02-26", date_to: "2024-03-03" });
    expect(defaultQuery("trends", ["pageview", "signup"], new Date(2024, 0, 10))).toEqual({
      events: [{ event: "pageview" }], measure: "totals", interval: "day", date_from: "2024-01-04", date_to: "2024-01-10",
    });
    expect(defaultQuery("stickiness", ["pageview", "signup"], new Date(2024, 0, 10))).toEqual({
      events: [{ event: "pageview" }], interval: "day", date_from: "2024-01-04", date_to: "2024-01-10",
    });
    expect(defaultQuery("lifecycle", ["pageview", "signup"], new Date(2024, 0, 10))).toEqual({
      event: "pageview", interval: "day", date_from: "2024-01-04", date_to: "2024-01-10",
    });
  });

  it("builds the capture URL from the page's host", () => {
    expect(captureUrl({ hostname: "analytics.local" })).toBe("http://analytics.local:8000");
  });

  it("returns only to local paths after login", () => {
    expect(safeReturnPath("/persons?search=a")).toBe("/persons?search=a");
    expect(safeReturnPath("//evil.example")).toBe("/insights/trends");
    expect(safeReturnPath("https://evil.example")).toBe("/insights/trends");
    expect(safeReturnPath(null)).toBe("/insights/trends");
  });
});
