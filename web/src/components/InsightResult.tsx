import { useMemo, useState } from "preact/hooks";
import { Chart } from "./Chart";
import { DataTable } from "./DataTable";
import { downloadText } from "../csv";
import { insightTable, tableCsv } from "../tables";
import type { ChartType } from "../charts";
import type { AnyQuery, AnyResult, InsightKind } from "../types";
import { KIND_TITLES } from "../kinds";
import { Alert } from "./Notices";

interface Props {
  kind: InsightKind;
  query: AnyQuery | null;
  result: AnyResult | null;
  loading: boolean;
  error: string | null;
  title?: string;
}

/** Chart, table and CSV export of one insight's answer: the insight page and dashboard tiles share it. */
export function InsightResult({ kind, query, result, loading, error, title }: Props) {
  const [chartType, setChartType] = useState<ChartType>("line");
  const table = useMemo(() => (result ? insightTable(kind, result, query ?? undefined) : null), [kind, result, query]);
  const name = title ?? KIND_TITLES[kind];

  return (
    <section class="result" aria-busy={loading ? "true" : "false"} aria-label={`${name} result`}>
      {loading && (
        <p class="loading" data-testid="loading">
          Loading…
        </p>
      )}
      <Alert text={error} />
      {result && table && (
        <>
          <div class="result-tools">
            {kind === "trends" && (
              <label>
                Chart type
                <select name="chart_type" value={chartType} onChange={(e) => setChartType(e.currentTarget.value as ChartType)}>
                  <option value="line">Line</option>
                  <option value="bar">Bar</option>
                </select>
              </label>
            )}
            <button type="button" data-testid="export-csv" onClick={() => downloadText(`${kind}.csv`, tableCsv(table))}>
              Export CSV
            </button>
          </div>
          <Chart kind={kind} result={result} chartType={chartType} label={`${name} chart; the table below has the same numbers`} />
          <DataTable table={table} caption={`${name} data`} />
        </>
      )}
    </section>
  );
}
