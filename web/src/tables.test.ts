import { describe, expect, it } from "vitest";
import { insightTable, tableCsv } from "./tables";

describe("insight tables", () => {
  it("trends: one row per series, breakdown labels, exact number text", () => {
    const t = insightTable("trends", {
      series: [
        { event: "pageview", breakdown_value: null, labels: ["2024-01-01", "2024-01-02"], values: [1234567, 0.1 + 0.2] },
        { event: "pageview", breakdown_value: "", labels: ["2024-01-01", "2024-01-02"], values: [null, 2] },
        { event: "pageview", breakdown_value: "Chrome", labels: ["2024-01-01", "2024-01-02"], values: [3, 4] },
      ],
    });
    expect(t.title).toBe("Series");
    expect(t.columns).toEqual(["2024-01-01", "2024-01-02"]);
    expect(t.rows).toEqual([
      { label: "pageview", cells: ["1234567", "0.30000000000000004"] },
      { label: "pageview · (none)", cells: ["", "2"] },
      { label: "pageview · Chrome", cells: ["3", "4"] },
    ]);
  });

  it("funnels: overall steps then breakdown steps", () => {
    const step = (event: string, count: number) => ({ event, count, conversion_from_first: 0.5, conversion_from_previous: 1, median_seconds_from_previous: null });
    const t = insightTable("funnels", { steps: [step("a", 2), step("b", 1)], breakdowns: [{ breakdown_value: "x", steps: [step("a", 1), step("b", 1)] }] });
    expect(t.columns).toEqual(["count", "conversion_from_first", "conversion_from_previous", "median_seconds_from_previous"]);
    expect(t.rows.map((r) => r.label)).toEqual(["1. a", "2. b", "x · 1. a", "x · 2. b"]);
    expect(t.rows[0].cells).toEqual(["2", "0.5", "1", ""]);
  });

  it("retention: size then period columns 0..periods", () => {
    const t = insightTable("retention", { cohorts: [{ date: "2024-01-01", size: 10, values: [10, 4, 2] }] }, { start_event: "a", return_event: "$any", period: "day", periods: 2, date_from: "2024-01-01", date_to: "2024-01-03" });
    expect(t.title).toBe("Cohort");
    expect(t.columns).toEqual(["size", "0", "1", "2"]);
    expect(t.rows).toEqual([{ label: "2024-01-01", cells: ["10", "10", "4", "2"] }]);
  });

  it("paths and sessions", () => {
    expect(insightTable("paths", { edges: [{ source: "1_a", target: "2_b", value: 5 }] }).rows).toEqual([{ label: "1_a → 2_b", cells: ["5"] }]);
    const s = insightTable("sessions", { labels: ["d1"], sessions: [3], avg_duration_seconds: [12.5], bounce_rate: [0.25] });
    expect(s.title).toBe("Measure");
    expect(s.rows).toEqual([
      { label: "sessions", cells: ["3"] },
      { label: "avg_duration_seconds", cells: ["12.5"] },
      { label: "bounce_rate", cells: ["0.25"] },
    ]);
  });

  it("stickiness: as trends, a row per series, a column per number of intervals", () => {
    const t = insightTable("stickiness", {
      series: [
        { event: "$pageview", labels: ["1", "2", "3"], values: [12, 5, 0] },
        { event: "signed_up", labels: ["1", "2", "3"], values: [7, 0, 1] },
      ],
    });
    expect(t.title).toBe("Series");
    expect(t.columns).toEqual(["1", "2", "3"]);
    expect(t.rows).toEqual([
      { label: "$pageview", cells: ["12", "5", "0"] },
      { label: "signed_up", cells: ["7", "0", "1"] },
    ]);
    expect(tableCsv(t)).toBe("Series,1,2,3\r\n$pageview,12,5,0\r\nsigned_up,7,0,1\r\n");
  });

  it("lifecycle: a row per status in order, dormant negative, zeros as 0", () => {
    const t = insightTable("lifecycle", {
      labels: ["2024-01-01", "2024-01-02", "2024-01-03"],
      dormant: [0, -3, -1],
      resurrecting: [0, 0, 2],
      returning: [0, 4, 5],
      new: [9, 2, 0],
    });
    expect(t.title).toBe("Status");
    expect(t.columns).toEqual(["2024-01-01", "2024-01-02", "2024-01-03"]);
    expect(t.rows).toEqual([
      { label: "new", cells: ["9", "2", "0"] },
      { label: "returning", cells: ["0", "4", "5"] },
      { label: "resurrecting", cells: ["0", "0", "2"] },
      { label: "dormant", cells: ["0", "-3", "-1"] },
    ]);
    expect(tableCsv(t)).toBe(
      "Status,2024-01-01,2024-01-02,2024-01-03\r\nnew,9,2,0\r\nreturning,0,4,5\r\nresurrecting,0,0,2\r\ndormant,0,-3,-1\r\n",
    );
  });

  it("exports the table as CSV", () => {
    const t = insightTable("trends", { series: [{ event: 'say "a,b"', breakdown_value: null, labels: ["x"], values: [1] }] });
    expect(tableCsv(t)).toBe('Series,x\r\n"say ""a,b""",1\r\n');
  });
});
