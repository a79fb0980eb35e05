import { useEffect, useState } from "preact/hooks";
import { apiRequest, errorText } from "../api";
import { useTitle } from "../router";
import { insightUrl } from "../urlstate";
import { KIND_TITLES } from "../kinds";
import { SelectField } from "../components/Pickers";
import type { Dashboard, Insight } from "../types";
import { Alert, Confirmation } from "../components/Notices";

export const REFRESH_OPTIONS = [
  { value: "0", text: "Never" },
  { value: "60", text: "1 min" },
  { value: "300", text: "5 min" },
  { value: "900", text: "15 min" },
  { value: "3600", text: "1 h" },
];

export function DashboardsPage() {
  useTitle("Dashboards");
  const [dashboards, setDashboards] = useState<Dashboard[] | null>(null);
  const [insights, setInsights] = useState<Insight[] | null>(null);
  const [name, setName] = useState("");
  const [refresh, setRefresh] = useState("0");
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const reload = async () => {
    try {
      const [d, i] = await Promise.all([
        apiRequest<{ dashboards: Dashboard[] }>("/api/dashboards"),
        apiRequest<{ insights: Insight[] }>("/api/insights"),
      ]);
      setDashboards(d.dashboards ?? []);
      setInsights(i.insights ?? []);
    } catch (e) {
      setError(errorText(e));
    }
  };

  useEffect(() => {
    reload();
  }, []);

  const act = async (work: () => Promise<string>) => {
    setError(null);
    setMessage(null);
    try {
      setMessage(await work());
      await reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  const create = (e: Event) => {
    e.preventDefault();
    act(async () => {
      const d = await apiRequest<Dashboard>("/api/dashboards", {
        method: "POST",
        body: { name: name.trim(), refresh_seconds: Number(refresh) },
      });
      setName("");
      return `Created dashboard “${d.name}”.`;
    });
  };

  const deleteDashboard = (d: Dashboard) =>
    act(async () => {
      await apiRequest(`/api/dashboards/${encodeURIComponent(String(d.id))}`, { method: "DELETE" });
      return `Deleted dashboard “${d.name}”.`;
    });

  const deleteInsight = (i: Insight) =>
    act(async () => {
      await apiRequest(`/api/insights/${encodeURIComponent(String(i.id))}`, { method: "DELETE" });
      return `Deleted insight “${i.name}”.`;
    });

  const addToDashboard = (insight: Insight, dashboardId: string) =>
    act(async () => {
      const path = `/api/dashboards/${encodeURIComponent(dashboardId)}`;
      const d = await apiRequest<Dashboard>(path);
      const tiles = [...d.tiles.map((t) => ({ insight_id: t.insight_id })), { insight_id: insight.id }];
      await apiRequest(path, { method: "PATCH", body: { tiles } });
      return `Added “${insight.name}” to “${d.name}”.`;
    });

  return (
    <>
      <h1>Dashboards</h1>
      <Confirmation text={message} />
      <Alert text={error} />
      <div class="two-columns">
        <section class="card" aria-labelledby="dashboards-title">
          <h2 id="dashboards-title">Your dashboards</h2>
          {dashboards === null ? (
            <p class="loading">Loading…</p>
          ) : dashboards.length === 0 ? (
            <p class="no-data">No dashboards yet: create one below.</p>
          ) : (
            <ul class="item-list" data-testid="dashboards-list">
              {dashboards.map((d) => (
                <li>
                  <a href={`/dashboards/${encodeURIComponent(String(d.id))}`}>{d.name}</a>
                  <span class="muted">
                    {d.tiles?.length ?? 0} tiles · refresh {REFRESH_OPTIONS.find((o) => o.value === String(d.refresh_seconds))?.text ?? `${d.refresh_seconds} s`}
                  </span>
                  <button type="button" class="remove" aria-label={`Delete dashboard ${d.name}`} onClick={() => deleteDashboard(d)}>
                    Delete
                  </button>
                </li>
              ))}
            </ul>
          )}
          <form class="create-form" onSubmit={create}>
            <h3>New dashboard</h3>
            <div class="field-row">
              <label class="field grow">
                <span class="field-label">Dashboard name</span>
                <input type="text" name="dashboard_name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
              </label>
              <SelectField label="Auto refresh" name="refresh_seconds" value={refresh} options={REFRESH_OPTIONS} onChange={setRefresh} />
              <button type="submit" class="primary" data-testid="create-dashboard">
                Create dashboard
              </button>
            </div>
          </form>
        </section>
        <section class="card" aria-labelledby="insights-title">
          <h2 id="insights-title">Saved insights</h2>
          {insights === null ? (
            <p class="loading">Loading…</p>
          ) : insights.length === 0 ? (
            <p class="no-data">No saved insights yet: run one under Trends, Funnels… and save it.</p>
          ) : (
            <ul class="item-list" data-testid="insights-list">
              {insights.map((i) => (
                <SavedInsightItem insight={i} dashboards={dashboards ?? []} onAdd={addToDashboard} onDelete={deleteInsight} />
              ))}
            </ul>
          )}
        </section>
      </div>
    </>
  );
}

function SavedInsightItem(props: {
  insight: Insight;
  dashboards: Dashboard[];
  onAdd: (i: Insight, dashboardId: string) => void;
  onDelete: (i: Insight) => void;
}) {
  const { insight, dashboards } = props;
  const [target, setTarget] = useState("");
  const chosen = target || String(dashboards[0]?.id ?? "");
  return (
    <li>
      <a href={insightUrl(insight.kind, insight.query)}>{insight.name}</a>
      <span class="muted">{KIND_TITLES[insight.kind] ?? insight.kind}</span>
      {dashboards.length > 0 && (
        <span class="inline-actions">
          <SelectField
            label={`Dashboard for ${insight.name}`}
            name="insight_dashboard"
            value={chosen}
            options={dashboards.map((d) => ({ value: String(d.id), text: d.name }))}
            onChange={setTarget}
          />
          <button type="button" data-testid="add-insight-to-dashboard" onClick={() => props.onAdd(insight, chosen)}>
            Add to dashboard
          </button>
        </span>
      )}
      <button type="button" class="remove" aria-label={`Delete insight ${insight.name}`} onClick={() => props.onDelete(insight)}>
        Delete
      </button>
    </li>
  );
}
