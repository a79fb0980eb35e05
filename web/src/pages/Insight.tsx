import { useEffect, useRef, useState } from "preact/hooks";
import { apiRequest, errorText, isAbort, runInsight } from "../api";
import { useDefinitions } from "../project";
import { useTitle } from "../router";
import { decodeQuery, defaultQuery, insightUrl } from "../urlstate";
import { KIND_TITLES } from "../kinds";
import { InsightResult } from "../components/InsightResult";
import { EmptyState } from "../components/EmptyState";
import { BreakdownEditor, DateRange, EventPicker, FilterRows, NumberField, SelectField } from "../components/Pickers";
import type {
  AnyQuery,
  AnyResult,
  Dashboard,
  Definitions,
  EventSpec,
  FunnelsQuery,
  Insight,
  InsightKind,
  LifecycleQuery,
  PathsQuery,
  RetentionQuery,
  SessionsQuery,
  StickinessQuery,
  TrendsQuery,
} from "../types";
import { Alert, Confirmation } from "../components/Notices";

const MEASURES: [string, string][] = [
  ["totals", "Total count"],
  ["uniques", "Unique users"],
  ["average", "Average per user"],
  ["active_percent", "Active users (%)"],
  ["frequency", "Frequency per user"],
  ["sum", "Sum of a property"],
  ["avg", "Average of a property"],
  ["distribution", "Distribution of a property"],
];
const PROPERTY_MEASURES = ["sum", "avg", "distribution"];
const INTERVALS = ["hour", "day", "week", "month"].map((v) => ({ value: v, text: v[0].toUpperCase() + v.slice(1) }));
const COARSE_INTERVALS = INTERVALS.filter((o) => o.value !== "hour");

type Update<Q> = (patch: Partial<Q>) => void;

interface EditorProps<Q> {
  query: Q;
  update: Update<Q>;
  defs: Definitions | null;
}

function without<T extends object, K extends keyof T>(obj: T, key: K): T {
  const copy = { ...obj };
  delete copy[key];
  return copy;
}

function EventSpecs(props: {
  specs: EventSpec[];
  noun: string;
  min: number;
  max: number;
  defs: Definitions | null;
  onChange: (specs: EventSpec[]) => void;
}) {
  const { specs, noun } = props;
  const set = (i: number, spec: EventSpec) => props.onChange(specs.map((s, j) => (j === i ? spec : s)));
  return (
    <fieldset class="event-specs">
      <legend>{noun === "Step" ? "Steps" : "Series"}</legend>
      {specs.map((spec, i) => (
        <div class="event-spec">
          <div class="field-row">
            <EventPicker
              label={`${noun} ${i + 1} event`}
              name="event"
              value={spec.event}
              events={props.defs ? props.defs.events : null}
              onChange={(event) => set(i, { ...spec, event })}
            />
            {specs.length > props.min && (
              <button type="button" class="remove" aria-label={`Remove ${noun.toLowerCase()} ${i + 1}`} onClick={() => props.onChange(specs.filter((_, j) => j !== i))}>
                Remove
              </button>
            )}
          </div>
          <FilterRows
            legend={`Filters on ${noun.toLowerCase()} ${i + 1}`}
            filters={spec.filters}
            defs={props.defs}
            onChange={(filters) => set(i, filters.length ? { ...spec, filters } : without(spec, "filters"))}
          />
        </div>
      ))}
      {specs.length < props.max && (
        <button type="button" onClick={() => props.onChange([...specs, { event: props.defs?.events[0] ?? specs[specs.length - 1]?.event ?? "" }])}>
          Add {noun.toLowerCase()}
        </button>
      )}
    </fieldset>
  );
}

function TrendsEditor({ query, update, defs }: EditorProps<TrendsQuery>) {
  const needsProperty = PROPERTY_MEASURES.includes(query.measure);
  return (
    <>
      <EventSpecs specs={query.events ?? []} noun="Series" min={1} max={20} defs={defs} onChange={(events) => update({ events })} />
      <div class="field-row">
        <SelectField
          label="Measure"
          name="measure"
          value={query.measure}
          options={MEASURES.map(([value, text]) => ({ value, text }))}
          onChange={(v) => {
            const measure = v as TrendsQuery["measure"];
            if (PROPERTY_MEASURES.includes(measure)) {
              const numeric = defs?.event_properties.find((p) => p.type === "Numeric") ?? defs?.event_properties[0];
              update({ measure, property: query.property ?? numeric?.name ?? "" });
            } else update({ measure, property: undefined });
          }}
        />
        {needsProperty && (
          <SelectField
            label="Property"
            name="property"
            value={query.property ?? ""}
            options={(defs?.event_properties ?? []).map((p) => ({ value: p.name, text: `${p.name} (${p.type ?? "unknown"})` }))}
            onChange={(property) => update({ property })}
          />
        )}
        <SelectField label="Interval" name="interval" value={query.interval} options={INTERVALS} onChange={(v) => update({ interval: v as TrendsQuery["interval"] })} />
      </div>
      <DateRange from={query.date_from} to={query.date_to} onChange={update} />
      <BreakdownEditor breakdown={query.breakdown} defs={defs} types={["event", "person"]} onChange={(breakdown) => update({ breakdown })} />
    </>
  );
}

function FunnelsEditor({ query, update, defs }: EditorProps<FunnelsQuery>) {
  return (
    <>
      <EventSpecs specs={query.steps ?? []} noun="Step" min={2} max={20} defs={defs} onChange={(steps) => update({ steps })} />
      <div class="field-row">
        <NumberField label="Conversion window (seconds)" name="window_seconds" min={1} value={query.window_seconds} onChange={(window_seconds) => update({ window_seconds })} />
      </div>
      <DateRange from={query.date_from} to={query.date_to} onChange={update} />
      <BreakdownEditor breakdown={query.breakdown} defs={defs} types={["event"]} onChange={(breakdown) => update({ breakdown })} />
    </>
  );
}

function RetentionEditor({ query, update, defs }: EditorProps<RetentionQuery>) {
  const events = defs ? defs.events : null;
  return (
    <>
      <div class="field-row">
        <EventPicker label="Start event" name="start_event" value={query.start_event} events={events} onChange={(start_event) => update({ start_event })} />
        <EventPicker
          label="Return event"
          name="return_event"
          value={query.return_event}
          events={events}
          extra={[{ value: "$any", text: "Any event" }]}
          onChange={(return_event) => update({ return_event })}
        />
      </div>
      <div class="field-row">
        <SelectField
          label="Period"
          name="period"
          value={query.period}
          options={[
            { value: "day", text: "Day" },
            { value: "week", text: "Week" },
          ]}
          onChange={(v) => update({ period: v as RetentionQuery["period"] })}
        />
        <NumberField label="Periods" name="periods" min={1} max={60} value={query.periods} onChange={(periods) => update({ periods })} />
      </div>
      <DateRange from={query.date_from} to={query.date_to} onChange={update} />
    </>
  );
}

function SessionsEditor({ query, update, defs }: EditorProps<SessionsQuery>) {
  return (
    <>
      <div class="field-row">
        <SelectField label="Interval" name="interval" value={query.interval} options={INTERVALS} onChange={(v) => update({ interval: v as SessionsQuery["interval"] })} />
      </div>
      <DateRange from={query.date_from} to={query.date_to} onChange={update} />
      <FilterRows legend="Filters" filters={query.filters} defs={defs} onChange={(filters) => update({ filters: filters.length ? filters : undefined })} />
    </>
  );
}

function PathsEditor({ query, update, defs }: EditorProps<PathsQuery>) {
  return (
    <>
      <div class="field-row">
        <EventPicker
          label="Start event"
          name="start_event"
          value={query.start_event ?? ""}
          events={defs ? defs.events : null}
          extra={[{ value: "", text: "Any event" }]}
          onChange={(v) => update({ start_event: v || undefined })}
        />
        <NumberField label="Steps" name="steps" min={2} max={10} value={query.steps} onChange={(steps) => update({ steps })} />
        <NumberField label="Edge limit" name="limit" min={1} max={1000} value={query.limit} onChange={(limit) => update({ limit })} />
      </div>
      <DateRange from={query.date_from} to={query.date_to} onChange={update} />
    </>
  );
}

function StickinessEditor({ query, update, defs }: EditorProps<StickinessQuery>) {
  return (
    <>
      <EventSpecs specs={query.events ?? []} noun="Series" min={1} max={10} defs={defs} onChange={(events) => update({ events })} />
      <div class="field-row">
        <SelectField label="Interval" name="interval" value={query.interval} options={COARSE_INTERVALS} onChange={(v) => update({ interval: v as StickinessQuery["interval"] })} />
      </div>
      <DateRange from={query.date_from} to={query.date_to} onChange={update} />
    </>
  );
}

function LifecycleEditor({ query, update, defs }: EditorProps<LifecycleQuery>) {
  return (
    <>
      <div class="field-row">
        <EventPicker label="Event" name="event" value={query.event} events={defs ? defs.events : null} onChange={(event) => update({ event })} />
        <SelectField label="Interval" name="interval" value={query.interval} options={COARSE_INTERVALS} onChange={(v) => update({ interval: v as LifecycleQuery["interval"] })} />
      </div>
      <DateRange from={query.date_from} to={query.date_to} onChange={update} />
      <FilterRows legend="Filters" filters={query.filters} defs={defs} onChange={(filters) => update({ filters: filters.length ? filters : undefined })} />
    </>
  );
}

function Editor({ kind, query, update, defs }: { kind: InsightKind; query: AnyQuery; update: Update<AnyQuery>; defs: Definitions | null }) {
  switch (kind) {
    case "trends":
      return <TrendsEditor query={query as TrendsQuery} update={update as Update<TrendsQuery>} defs={defs} />;
    case "funnels":
      return <FunnelsEditor query={query as FunnelsQuery} update={update as Update<FunnelsQuery>} defs={defs} />;
    case "retention":
      return <RetentionEditor query={query as RetentionQuery} update={update as Update<RetentionQuery>} defs={defs} />;
    case "sessions":
      return <SessionsEditor query={query as SessionsQuery} update={update as Update<SessionsQuery>} defs={defs} />;
    case "paths":
      return <PathsEditor query={query as PathsQuery} update={update as Update<PathsQuery>} defs={defs} />;
    case "stickiness":
      return <StickinessEditor query={query as StickinessQuery} update={update as Update<StickinessQuery>} defs={defs} />;
    case "lifecycle":
      return <LifecycleEditor query={query as LifecycleQuery} update={update as Update<LifecycleQuery>} defs={defs} />;
  }
}

/** Drops keys set to undefined, so an optional field the form cleared leaves the request. */
function clean<Q extends object>(q: Q): Q {
  return Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined)) as Q;
}

export function InsightPage({ kind, search }: { kind: InsightKind; search: string }) {
  useTitle(KIND_TITLES[kind]);
  const { definitions, error: defsError } = useDefinitions();
  const fromUrl = useRef(decodeQuery(search));
  const [query, setQueryState] = useState<AnyQuery | null>(() =>
    fromUrl.current ? ({ ...defaultQuery(kind, []), ...fromUrl.current } as AnyQuery) : null,
  );
  const latest = useRef(query);
  const setQuery = (q: AnyQuery) => {
    latest.current = q;
    setQueryState(q);
  };
  const [ran, setRan] = useState<AnyQuery | null>(null);
  const [result, setResult] = useState<AnyResult | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const inFlight = useRef<AbortController | null>(null);

  const run = async (q: AnyQuery) => {
    inFlight.current?.abort();
    const controller = new AbortController();
    inFlight.current = controller;
    history.replaceState(history.state, "", insightUrl(kind, q));
    setLoading(true);
    setError(null);
    setResult(null);
    try {
      const r = await runInsight(kind, q, controller.signal);
      if (controller.signal.aborted) return;
      setRan(q);
      setResult(r);
    } catch (e) {
      if (isAbort(e) || controller.signal.aborted) return;
      setError(errorText(e));
    } finally {
      if (inFlight.current === controller) setLoading(false);
    }
  };

  // A shared URL runs at once; otherwise wait for the definitions to pick the first event.
  useEffect(() => {
    if (query) run(query);
    return () => inFlight.current?.abort();
  }, []);
  useEffect(() => {
    if (latest.current || (!definitions && !defsError)) return;
    const events = definitions?.events ?? [];
    if (definitions && events.length === 0) return;
    const q = defaultQuery(kind, events);
    setQuery(q);
    run(q);
  }, [definitions, defsError]);

  const update = (patch: Partial<AnyQuery>) => setQuery(clean({ ...latest.current!, ...patch } as AnyQuery));
  const noEvents = definitions !== null && definitions.events.length === 0;

  return (
    <>
      <h1>{KIND_TITLES[kind]}</h1>
      <Alert text={defsError} />
      {noEvents && <EmptyState />}
      {query && (
        <div class="insight-layout">
          <form
            class="card query-form"
            aria-label={`${KIND_TITLES[kind]} query`}
            onSubmit={(e) => {
              e.preventDefault();
              if (latest.current) run(latest.current);
            }}
          >
            <Editor kind={kind} query={query} update={update} defs={definitions} />
            <div class="form-actions">
              <button type="submit" class="primary">
                Run
              </button>
            </div>
          </form>
          <div class="insight-output">
            <InsightResult kind={kind} query={ran} result={result} loading={loading} error={error} />
            <SaveInsight kind={kind} query={query} />
          </div>
        </div>
      )}
      {!query && !noEvents && !defsError && (
        <p class="loading" data-testid="loading">
          Loading…
        </p>
      )}
    </>
  );
}

function SaveInsight({ kind, query }: { kind: InsightKind; query: AnyQuery }) {
  const [name, setName] = useState("");
  const [saved, setSaved] = useState<{ insight: Insight; json: string } | null>(null);
  const [dashboards, setDashboards] = useState<Dashboard[]>([]);
  const [dashboardId, setDashboardId] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    apiRequest<{ dashboards: Dashboard[] }>("/api/dashboards").then(
      (d) => {
        setDashboards(d.dashboards ?? []);
        if (d.dashboards?.length) setDashboardId(String(d.dashboards[0].id));
      },
      () => setDashboards([]), // no dashboards to offer; saving still works
    );
  }, []);

  const insightName = () => name.trim() || `${KIND_TITLES[kind]} insight`;

  const save = async (): Promise<Insight> => {
    const json = JSON.stringify({ name: insightName(), query });
    if (saved && saved.json === json) return saved.insight;
    const insight = await apiRequest<Insight>("/api/insights", { method: "POST", body: { name: insightName(), kind, query } });
    setSaved({ insight, json });
    return insight;
  };

  const act = async (work: () => Promise<string>) => {
    setBusy(true);
    setError(null);
    setMessage(null);
    try {
      setMessage(await work());
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  const onSave = () => act(async () => `Saved insight “${(await save()).name}”.`);

  const onAdd = () =>
    act(async () => {
      const insight = await save();
      const dashboard = await apiRequest<Dashboard>(`/api/dashboards/${encodeURIComponent(dashboardId)}`);
      const tiles = [...dashboard.tiles.map((t) => ({ insight_id: t.insight_id })), { insight_id: insight.id }];
      await apiRequest<Dashboard>(`/api/dashboards/${encodeURIComponent(dashboardId)}`, { method: "PATCH", body: { tiles } });
      return `Saved insight “${insight.name}” and added it to “${dashboard.name}”.`;
    });

  return (
    <section class="card save-insight" aria-labelledby="save-title">
      <h2 id="save-title">Save</h2>
      <div class="field-row">
        <label class="field grow">
          <span class="field-label">Insight name</span>
          <input type="text" name="insight_name" value={name} placeholder={`${KIND_TITLES[kind]} insight`} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <button type="button" data-testid="save-insight" disabled={busy} onClick={onSave}>
          Save insight
        </button>
      </div>
      {dashboards.length > 0 && (
        <div class="field-row">
          <SelectField
            label="Dashboard"
            name="dashboard"
            value={dashboardId}
            options={dashboards.map((d) => ({ value: String(d.id), text: d.name }))}
            onChange={setDashboardId}
          />
          <button type="button" data-testid="add-to-dashboard" disabled={busy} onClick={onAdd}>
            Add to dashboard
          </button>
        </div>
      )}
      <Confirmation text={message} testId="save-confirmation" />
      <Alert text={error} />
    </section>
  );
}
