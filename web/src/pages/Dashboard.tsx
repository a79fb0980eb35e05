import { useEffect, useState } from "preact/hooks";
import { apiRequest, errorText, isAbort, runInsight } from "../api";
import { useTitle } from "../router";
import { insightUrl } from "../urlstate";
import { InsightResult } from "../components/InsightResult";
import { SelectField } from "../components/Pickers";
import { REFRESH_OPTIONS } from "./Dashboards";
import type { AnyResult, Dashboard, Insight } from "../types";
import { Alert } from "../components/Notices";

export function DashboardPage({ id }: { id: string }) {
  const [dashboard, setDashboard] = useState<Dashboard | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [refreshToken, setRefreshToken] = useState(0);
  const [lastRefreshed, setLastRefreshed] = useState<Date | null>(null);
  useTitle(dashboard ? dashboard.name : "Dashboard");
  const path = `/api/dashboards/${encodeURIComponent(id)}`;

  useEffect(() => {
    apiRequest<Dashboard>(path).then(
      (d) => {
        setDashboard(d);
        setLastRefreshed(new Date());
      },
      (e) => setError(errorText(e)),
    );
  }, [id]);

  const refreshSeconds = dashboard?.refresh_seconds ?? 0;
  useEffect(() => {
    if (!refreshSeconds) return;
    const timer = setInterval(() => refreshNow(), refreshSeconds * 1000);
    return () => clearInterval(timer);
  }, [refreshSeconds]);

  const refreshNow = () => {
    setRefreshToken((t) => t + 1);
    setLastRefreshed(new Date());
  };

  const patch = async (body: Partial<Pick<Dashboard, "name" | "refresh_seconds">> | { tiles: { insight_id: Insight["id"] }[] }) => {
    setError(null);
    try {
      const updated = await apiRequest<Dashboard | undefined>(path, { method: "PATCH", body });
      if (updated && Array.isArray(updated.tiles)) setDashboard(updated);
      else setDashboard(await apiRequest<Dashboard>(path));
    } catch (e) {
      setError(errorText(e));
    }
  };

  const removeTile = (index: number) =>
    patch({ tiles: dashboard!.tiles.filter((_, i) => i !== index).map((t) => ({ insight_id: t.insight_id })) });

  return (
    <>
      <p class="breadcrumb">
        <a href="/dashboards">← Dashboards</a>
      </p>
      <h1>{dashboard ? dashboard.name : "Dashboard"}</h1>
      <Alert text={error} />
      {dashboard && (
        <>
          <div class="card dashboard-controls">
            <SelectField
              label="Auto refresh"
              name="refresh_seconds"
              value={String(dashboard.refresh_seconds)}
              options={REFRESH_OPTIONS}
              onChange={(v) => patch({ refresh_seconds: Number(v) })}
            />
            <button type="button" data-testid="refresh-now" onClick={refreshNow}>
              Refresh now
            </button>
            <span class="muted" data-testid="last-refreshed">
              Last refreshed: {lastRefreshed ? lastRefreshed.toLocaleTimeString() : "never"}
            </span>
          </div>
          {dashboard.tiles.length === 0 && (
            <p class="no-data">
              This dashboard has no tiles yet. Save an insight and use “Add to dashboard”, or add one from the <a href="/dashboards">saved insights</a>.
            </p>
          )}
          <div class="dashboard-grid">
            {dashboard.tiles.map((tile, i) => (
              <Tile key={`${i}-${tile.insight_id}`} insight={tile.insight} refreshToken={refreshToken} onRemove={() => removeTile(i)} />
            ))}
          </div>
        </>
      )}
    </>
  );
}

function Tile({ insight, refreshToken, onRemove }: { insight: Insight; refreshToken: number; onRemove: () => void }) {
  const [result, setResult] = useState<AnyResult | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    setError(null);
    runInsight(insight.kind, insight.query, controller.signal).then(
      (r) => {
        setResult(r);
        setLoading(false);
      },
      (e) => {
        if (isAbort(e)) return;
        setError(errorText(e));
        setResult(null);
        setLoading(false);
      },
    );
    return () => controller.abort();
  }, [insight.id, refreshToken]);

  return (
    <article class="card tile" data-testid="dashboard-tile" aria-label={insight.name}>
      <div class="tile-header">
        <h2>
          <a href={insightUrl(insight.kind, insight.query)}>{insight.name}</a>
        </h2>
        <button type="button" class="remove" data-testid="remove-tile" aria-label={`Remove ${insight.name} from the dashboard`} onClick={onRemove}>
          Remove
        </button>
      </div>
      <InsightResult kind={insight.kind} query={insight.query} result={result} loading={loading} error={error} title={insight.name} />
    </article>
  );
}
