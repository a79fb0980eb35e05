import { useEffect, useRef } from "preact/hooks";
import { chartOption, echarts, type ChartType } from "../charts";
import type { AnyResult, InsightKind } from "../types";

interface Props {
  kind: InsightKind;
  result: AnyResult;
  chartType?: ChartType;
  label: string;
}

export function Chart({ kind, result, chartType = "line", label }: Props) {
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<ReturnType<typeof echarts.init> | null>(null);

  useEffect(() => {
    if (!el.current) return;
    const instance = echarts.init(el.current);
    chart.current = instance;
    const observer = new ResizeObserver(() => instance.resize());
    observer.observe(el.current);
    return () => {
      observer.disconnect();
      instance.dispose();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    chart.current?.setOption(chartOption(kind, result, chartType), { notMerge: true });
  }, [kind, result, chartType]);

  return <div class={`chart chart-${kind}`} data-testid="insight-chart" role="img" aria-label={label} ref={el} />;
}
