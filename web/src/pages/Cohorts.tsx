import { useEffect, useState } from "preact/hooks";
import { apiRequest, errorText } from "../api";
import { useDefinitions } from "../project";
import { navigate, useTitle } from "../router";
import { formatTime } from "../format";
import { EMPTY_FORM, cohortRequest, newBehavior, type BehaviorRow, type CohortForm } from "../cohorts";
import { EventPicker, FilterRows, NumberField, SelectField } from "../components/Pickers";
import type { Cohort, Definitions } from "../types";
import { Alert } from "../components/Notices";

export const cohortUrl = (id: number | string) => `/cohorts/${encodeURIComponent(String(id))}`;

export function CohortsPage() {
  useTitle("Cohorts");
  const [cohorts, setCohorts] = useState<Cohort[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    apiRequest<{ cohorts: Cohort[] }>("/api/cohorts").then(
      (a) => setCohorts(a.cohorts ?? []),
      (e) => setError(errorText(e)),
    );
  }, []);

  const loading = cohorts === null && !error;
  return (
    <>
      <h1>Cohorts</h1>
      <div class="two-columns">
        <section class="card" aria-labelledby="cohorts-title" aria-busy={loading ? "true" : "false"}>
          <h2 id="cohorts-title">Your cohorts</h2>
          <Alert text={error} />
          {loading && (
            <p class="loading" data-testid="loading">
              Loading…
            </p>
          )}
          {cohorts && cohorts.length === 0 && <p class="no-data">No cohorts yet: create one.</p>}
          {cohorts && cohorts.length > 0 && (
            <div class="table-wrap">
              <table data-testid="cohorts-table">
                <caption>Cohorts of this project</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Kind</th>
                    <th scope="col">Count</th>
                    <th scope="col">Version</th>
                    <th scope="col">Computed at</th>
                  </tr>
                </thead>
                <tbody>
                  {cohorts.map((c) => (
                    <tr data-cohort-id={c.id}>
                      <th scope="row">
                        <a href={cohortUrl(c.id)}>{c.name}</a>
                      </th>
                      <td>{c.kind}</td>
                      <td>{c.count}</td>
                      <td>{c.version}</td>
                      <td>{c.computed_at ? <time dateTime={c.computed_at}>{formatTime(c.computed_at)}</time> : "never"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
        <NewCohort />
      </div>
    </>
  );
}

function NewCohort() {
  const { definitions, error: defsError } = useDefinitions();
  const [form, setForm] = useState<CohortForm>(EMPTY_FORM);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const update = (patch: Partial<CohortForm>) => setForm((f) => ({ ...f, ...patch }));

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const cohort = await apiRequest<Cohort>("/api/cohorts", { method: "POST", body: cohortRequest(form) });
      navigate(cohortUrl(cohort.id));
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-labelledby="new-cohort-title">
      <form class="create-form query-form" onSubmit={submit} aria-busy={busy ? "true" : "false"}>
        <h2 id="new-cohort-title">New cohort</h2>
        <Alert text={defsError} />
        <div class="field-row">
          <label class="field grow">
            <span class="field-label">Cohort name</span>
            <input type="text" name="cohort_name" required value={form.name} onInput={(e) => update({ name: e.currentTarget.value })} />
          </label>
          <SelectField
            label="Kind"
            name="cohort_kind"
            value={form.kind}
            options={[
              { value: "dynamic", text: "Dynamic (filters)" },
              { value: "static", text: "Static (distinct ids)" },
            ]}
            onChange={(v) => update({ kind: v as CohortForm["kind"] })}
          />
        </div>
        {form.kind === "static" ? (
          <label class="field">
            <span class="field-label">Distinct ids, one per line</span>
            <textarea name="distinct_ids" rows={8} value={form.idsText} onInput={(e) => update({ idsText: e.currentTarget.value })} />
          </label>
        ) : (
          <DynamicFields form={form} defs={definitions} update={update} />
        )}
        <div class="form-actions">
          <button type="submit" class="primary" data-testid="create-cohort" disabled={busy}>
            {busy ? "Creating…" : "Create cohort"}
          </button>
        </div>
        <Alert text={error} />
      </form>
    </section>
  );
}

function DynamicFields(props: { form: CohortForm; defs: Definitions | null; update: (patch: Partial<CohortForm>) => void }) {
  const { form, defs, update } = props;
  const behaviors = form.behaviors;
  const setBehavior = (i: number, patch: Partial<BehaviorRow>) =>
    update({ behaviors: behaviors.map((b, j) => (j === i ? { ...b, ...patch } : b)) });
  return (
    <>
      <SelectField
        label="Persons matching"
        name="cohort_match"
        value={form.match}
        options={[
          { value: "all", text: "all of the filters" },
          { value: "any", text: "any of the filters" },
        ]}
        onChange={(v) => update({ match: v as CohortForm["match"] })}
      />
      <FilterRows
        legend="Person properties"
        types={["person"]}
        filters={form.personFilters}
        defs={defs}
        onChange={(personFilters) => update({ personFilters })}
      />
      <fieldset class="filters" data-testid="behavior-filters">
        <legend>Behaviour</legend>
        {behaviors.map((b, i) => (
          <div class="filter-row">
            <SelectField
              label={`Behaviour ${i + 1}`}
              name="behavior_did"
              value={b.did ? "did" : "did_not"}
              options={[
                { value: "did", text: "did" },
                { value: "did_not", text: "did not do" },
              ]}
              onChange={(v) => setBehavior(i, { did: v === "did" })}
            />
            <EventPicker
              label="Event"
              name="behavior_event"
              value={b.event}
              events={defs ? defs.events : null}
              onChange={(event) => setBehavior(i, { event })}
            />
            <NumberField label="At least N times" name="behavior_min_count" min={1} max={10000} value={b.min_count} onChange={(min_count) => setBehavior(i, { min_count })} />
            <NumberField label="Within D days" name="behavior_days" min={1} max={3650} value={b.days} onChange={(days) => setBehavior(i, { days })} />
            <button type="button" class="remove" aria-label={`Remove behaviour ${i + 1}`} onClick={() => update({ behaviors: behaviors.filter((_, j) => j !== i) })}>
              Remove
            </button>
          </div>
        ))}
        <button type="button" onClick={() => update({ behaviors: [...behaviors, newBehavior(defs?.events[0] ?? "")] })}>
          Add behaviour filter
        </button>
      </fieldset>
    </>
  );
}
