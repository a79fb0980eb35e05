import { useEffect, useRef } from "preact/hooks";
import type { ChartType } from "../charts";
import type { AnyResult, InsightKind } from "../types";

type ChartsModule = typeof import("../charts");
type ChartInstance = ReturnType<ChartsModule["echarts"]["init"]>;

// ECharts is most of the bundle: load it on the first chart, so login and the other pages come up fast.
let chartsModule: Promise<ChartsModule> | null = null;
const loadCharts = () => (chartsModule ??= import("../charts"));

interface Props {
  kind: InsightKind;
  result: AnyResult;
  chartType?: ChartType;
  label: string;
}

export function Chart({ kind, result, chartType = "line", label }: Props) {
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<{ instance: ChartInstance; charts: ChartsModule } | null>(null);
  const latest = useRef({ kind, result, chartType });
  latest.current = { kind, result, chartType };

  useEffect(() => {
    let disposed = false;
    let observer: ResizeObserver | null = null;
    loadCharts().then((charts) => {
      if (disposed || !el.current) return;
      const instance = charts.echarts.init(el.current);
      chart.current = { instance, charts };
      const { kind, result, chartType } = latest.current;
      instance.setOption(charts.chartOption(kind, result, chartType), { notMerge: true });
      observer = new ResizeObserver(() => instance.resize());
      observer.observe(el.current);
    });
    return () => {
      disposed = true;
      observer?.disconnect();
      chart.current?.instance.dispose();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    const c = chart.current;
    c?.instance.setOption(c.charts.chartOption(kind, result, chartType), { notMerge: true });
  }, [kind, result, chartType]);

  return <div class={`chart chart-${kind}`} data-testid="insight-chart" role="img" aria-label={label} ref={el} />;
}
