import { describe, expect, it } from "vitest";
import { chartOption } from "./charts";

type Series = { name: string; type: string; stack?: string; data: (number | null)[] };

describe("chart options", () => {
  it("stickiness: bars by number of intervals, one series per event", () => {
    const o = chartOption("stickiness", {
      series: [
        { event: "$pageview", labels: ["1", "2"], values: [4, 1] },
        { event: "signed_up", labels: ["1", "2"], values: [2, 0] },
      ],
    }) as { xAxis: { data: string[] }; series: Series[] };
    expect(o.xAxis.data).toEqual(["1", "2"]);
    expect(o.series.map((s) => [s.name, s.type, s.data])).toEqual([
      ["$pageview", "bar", [4, 1]],
      ["signed_up", "bar", [2, 0]],
    ]);
  });

  it("lifecycle: four stacked bar series, dormant negative, with a legend", () => {
    const o = chartOption("lifecycle", {
      labels: ["d1", "d2"], new: [3, 1], returning: [0, 2], resurrecting: [0, 1], dormant: [0, -1],
    }) as { legend: { data: string[] }; xAxis: { data: string[] }; series: Series[] };
    expect(o.legend.data).toEqual(["new", "returning", "resurrecting", "dormant"]);
    expect(o.xAxis.data).toEqual(["d1", "d2"]);
    expect(o.series.every((s) => s.type === "bar" && s.stack === "lifecycle")).toBe(true);
    expect(o.series.map((s) => s.data)).toEqual([[3, 1], [0, 2], [0, 1], [0, -1]]);
  });
});
