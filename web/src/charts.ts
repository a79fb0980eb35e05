// ECharts, imported piece by piece so the bundle keeps only what these charts use.
import * as echarts from "echarts/core";
import { BarChart, HeatmapChart, LineChart, SankeyChart } from "echarts/charts";
import {
  GridComponent,
  LegendComponent,
  TooltipComponent,
  VisualMapComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import type { EChartsCoreOption } from "echarts/core";
import type {
  AnyResult,
  FunnelsResult,
  InsightKind,
  LifecycleResult,
  PathsResult,
  RetentionResult,
  SessionsResult,
  StickinessResult,
  TrendsResult,
} from "./types";
import { LIFECYCLE_STATUSES } from "./types";
import { seriesLabel, trendsTable } from "./tables";

echarts.use([
  LineChart,
  BarChart,
  HeatmapChart,
  SankeyChart,
  GridComponent,
  LegendComponent,
  TooltipComponent,
  VisualMapComponent,
  CanvasRenderer,
]);

export { echarts };

export type ChartType = "line" | "bar";

const TEXT = "#334155";
const base = { textStyle: { color: TEXT, fontFamily: "system-ui, sans-serif" }, animationDuration: 300 };

function percent(v: number | null | undefined): string {
  return v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`;
}

export function formatSeconds(v: number | null | undefined): string {
  if (v === null || v === undefined) return "–";
  if (v < 60) return `${Math.round(v)} s`;
  if (v < 3600) return `${(v / 60).toFixed(1)} min`;
  if (v < 86400) return `${(v / 3600).toFixed(1)} h`;
  return `${(v / 86400).toFixed(1)} d`;
}

function trendsOption(result: TrendsResult, chartType: ChartType): EChartsCoreOption {
  const table = trendsTable(result);
  const series = result.series ?? [];
  return {
    ...base,
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", bottom: 0, data: series.map(seriesLabel) },
    grid: { left: 48, right: 24, top: 24, bottom: 56, containLabel: true },
    xAxis: { type: "category", data: table.columns, boundaryGap: chartType === "bar" },
    yAxis: { type: "value" },
    series: table.rows.map((row) => ({
      name: row.label,
      type: chartType,
      data: row.cells.map((c) => (c === "" ? null : Number(c))),
      showSymbol: table.columns.length < 40,
    })),
  };
}

function funnelsOption(result: FunnelsResult): EChartsCoreOption {
  const steps = result.steps ?? [];
  const names = steps.map((s, i) => `${i + 1}. ${s.event}`);
  const groups = [
    { name: "All", steps },
    ...(result.breakdowns ?? []).map((b) => ({ name: String(b.breakdown_value ?? "(none)"), steps: b.steps })),
  ];
  return {
    ...base,
    tooltip: {
      trigger: "item",
      formatter: (p: { seriesIndex: number; dataIndex: number; seriesName: string }) => {
        const s = groups[p.seriesIndex]?.steps[p.dataIndex];
        if (!s) return "";
        return [
          `<strong>${escapeHtml(p.seriesName)} — ${escapeHtml(names[p.dataIndex] ?? s.event)}</strong>`,
          `Count: ${s.count}`,
          `Conversion from first: ${percent(s.conversion_from_first)}`,
          `Conversion from previous: ${percent(s.conversion_from_previous)}`,
          `Median time from previous: ${formatSeconds(s.median_seconds_from_previous)}`,
        ].join("<br>");
      },
    },
    legend: groups.length > 1 ? { type: "scroll", bottom: 0 } : undefined,
    grid: { left: 48, right: 24, top: 32, bottom: 56, containLabel: true },
    xAxis: { type: "category", data: names },
    yAxis: { type: "value" },
    series: groups.map((g) => ({
      name: g.name,
      type: "bar",
      data: g.steps.map((s) => s.count),
      label: {
        show: groups.length === 1,
        position: "top",
        color: TEXT,
        lineHeight: 16,
        formatter: (p: { dataIndex: number }) => {
          const s = g.steps[p.dataIndex];
          const median = p.dataIndex > 0 ? `\n${formatSeconds(s?.median_seconds_from_previous)}` : "";
          return `${percent(s?.conversion_from_first)}${median}`;
        },
      },
    })),
  };
}

function retentionOption(result: RetentionResult): EChartsCoreOption {
  const cohorts = result.cohorts ?? [];
  const width = Math.max(0, ...cohorts.map((c) => c.values.length));
  const data: [number, number, number | null, number | null][] = [];
  cohorts.forEach((c, y) =>
    c.values.forEach((v, x) => data.push([x, y, c.size && v !== null ? Math.round((v / c.size) * 1000) / 10 : null, v])),
  );
  return {
    ...base,
    tooltip: {
      formatter: (p: { value: [number, number, number | null, number | null] }) =>
        `${escapeHtml(cohorts[p.value[1]]?.date ?? "")}, period ${p.value[0]}<br>${p.value[3] ?? "–"} people (${p.value[2] ?? "–"}%)`,
    },
    grid: { left: 24, right: 24, top: 16, bottom: 72, containLabel: true },
    xAxis: { type: "category", name: "Period", nameLocation: "middle", nameGap: 28, data: Array.from({ length: width }, (_, i) => String(i)), splitArea: { show: true } },
    yAxis: { type: "category", inverse: true, data: cohorts.map((c) => c.date), splitArea: { show: true } },
    visualMap: { min: 0, max: 100, calculable: false, orient: "horizontal", left: "center", bottom: 0, inRange: { color: ["#eff6ff", "#1d4ed8"] }, text: ["100%", "0%"] },
    series: [
      {
        type: "heatmap",
        data,
        label: { show: width <= 15 && cohorts.length <= 31, formatter: (p: { value: unknown[] }) => (p.value[2] === null ? "" : `${p.value[2]}%`) },
      },
    ],
  };
}

function pathsOption(result: PathsResult): EChartsCoreOption {
  const edges = result.edges ?? [];
  const nodes = new Set<string>();
  for (const e of edges) {
    nodes.add(e.source);
    nodes.add(e.target);
  }
  return {
    ...base,
    tooltip: { trigger: "item" },
    series: [
      {
        type: "sankey",
        left: 8,
        right: 120,
        emphasis: { focus: "adjacency" },
        nodeAlign: "left",
        data: [...nodes].map((name) => ({ name })),
        links: edges.map((e) => ({ source: e.source, target: e.target, value: e.value })),
        label: { color: TEXT },
        lineStyle: { color: "gradient", opacity: 0.35 },
      },
    ],
  };
}

function sessionsOption(result: SessionsResult): EChartsCoreOption {
  const labels = (result.labels ?? []).map(String);
  return {
    ...base,
    tooltip: { trigger: "axis" },
    legend: { bottom: 0 },
    grid: { left: 48, right: 96, top: 32, bottom: 56, containLabel: true },
    xAxis: { type: "category", data: labels },
    yAxis: [
      { type: "value", name: "Sessions" },
      { type: "value", name: "Avg duration (s)", position: "right" },
      { type: "value", name: "Bounce rate", position: "right", offset: 64, min: 0, max: 1, show: false },
    ],
    series: [
      { name: "Sessions", type: "line", data: result.sessions ?? [] },
      { name: "Avg duration (s)", type: "line", yAxisIndex: 1, data: result.avg_duration_seconds ?? [], lineStyle: { type: "dashed" } },
      { name: "Bounce rate", type: "line", yAxisIndex: 2, data: result.bounce_rate ?? [], lineStyle: { type: "dotted" } },
    ],
  };
}

function stickinessOption(result: StickinessResult): EChartsCoreOption {
  const table = trendsTable(result);
  return {
    ...base,
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", bottom: 0, data: table.rows.map((r) => r.label) },
    grid: { left: 48, right: 24, top: 32, bottom: 72, containLabel: true },
    xAxis: { type: "category", name: "Intervals active", nameLocation: "middle", nameGap: 28, data: table.columns },
    yAxis: { type: "value", name: "Persons", minInterval: 1 },
    series: table.rows.map((row) => ({
      name: row.label,
      type: "bar",
      data: row.cells.map((c) => (c === "" ? null : Number(c))),
    })),
  };
}

const LIFECYCLE_COLORS: Record<(typeof LIFECYCLE_STATUSES)[number], string> = {
  new: "#16a34a",
  returning: "#2563eb",
  resurrecting: "#9333ea",
  dormant: "#dc2626",
};

function lifecycleOption(result: LifecycleResult): EChartsCoreOption {
  const labels = (result.labels ?? []).map(String);
  return {
    ...base,
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: { bottom: 0, data: [...LIFECYCLE_STATUSES] },
    grid: { left: 48, right: 24, top: 32, bottom: 56, containLabel: true },
    xAxis: { type: "category", data: labels },
    yAxis: { type: "value", name: "Persons", minInterval: 1 },
    // one stack: dormant (negative) stacks below the axis, the other three above it
    series: LIFECYCLE_STATUSES.map((status) => ({
      name: status,
      type: "bar",
      stack: "lifecycle",
      itemStyle: { color: LIFECYCLE_COLORS[status] },
      data: labels.map((_, i) => result[status]?.[i] ?? null),
    })),
  };
}

export function chartOption(kind: InsightKind, result: AnyResult, chartType: ChartType = "line"): EChartsCoreOption {
  switch (kind) {
    case "trends":
      return trendsOption(result as TrendsResult, chartType);
    case "funnels":
      return funnelsOption(result as FunnelsResult);
    case "retention":
      return retentionOption(result as RetentionResult);
    case "paths":
      return pathsOption(result as PathsResult);
    case "sessions":
      return sessionsOption(result as SessionsResult);
    case "stickiness":
      return stickinessOption(result as StickinessResult);
    case "lifecycle":
      return lifecycleOption(result as LifecycleResult);
  }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}
