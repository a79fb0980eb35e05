import { useEffect, useState } from "preact/hooks";
import { apiRequest, errorText } from "../api";
import { navigate, useTitle } from "../router";
import { fewProperties, formatTime } from "../format";
import { useCursorList, type CursorPage } from "../paging";
import { describeFilter } from "../cohorts";
import type { Cohort, CohortPerson } from "../types";
import { Alert, Confirmation } from "../components/Notices";

const PAGE_SIZE = 25;

export function CohortPage({ id }: { id: string }) {
  const [cohort, setCohort] = useState<Cohort | null>(null);
  const [loading, setLoading] = useState(false);
  const [busy, setBusy] = useState<"refresh" | "delete" | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useTitle(cohort ? `Cohort ${cohort.name}` : "Cohort");
  const path = `/api/cohorts/${encodeURIComponent(id)}`;

  const list = useCursorList<CohortPerson, { persons: CohortPerson[] } & CursorPage>(`${path}/persons`, PAGE_SIZE, (page) => page.persons);
  const { items: members, cursor, loading: membersLoading } = list;

  useEffect(() => {
    setLoading(true);
    apiRequest<Cohort>(path)
      .then((c) => {
        setCohort(c);
        return list.load(null);
      })
      .catch((e) => setError(errorText(e)))
      .finally(() => setLoading(false));
  }, []);

  const refresh = async () => {
    setBusy("refresh");
    setError(null);
    setMessage(null);
    try {
      const c = await apiRequest<Cohort>(`${path}/refresh`, { method: "POST" });
      setCohort(c);
      await list.load(null);
      setMessage(`Recomputed: version ${c.version}, ${c.count} ${c.count === 1 ? "person" : "persons"}.`);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(null);
    }
  };

  const remove = async () => {
    if (!cohort || !window.confirm(`Delete the cohort “${cohort.name}”?`)) return;
    setBusy("delete");
    setError(null);
    setMessage(null);
    try {
      await apiRequest(path, { method: "DELETE" });
      navigate("/cohorts");
    } catch (e) {
      setError(errorText(e));
      setBusy(null);
    }
  };

  return (
    <>
      <p class="breadcrumb">
        <a href="/cohorts">← Cohorts</a>
      </p>
      <h1>{cohort ? `Cohort ${cohort.name}` : "Cohort"}</h1>
      <Confirmation text={message} testId="cohort-message" />
      <Alert text={error ?? list.error} />
      {loading && !cohort && (
        <p class="loading" data-testid="loading">
          Loading…
        </p>
      )}
      {cohort && (
        <div class="person-layout">
          <section class="card" aria-labelledby="cohort-about" aria-busy={busy === "refresh" ? "true" : "false"}>
            <h2 id="cohort-about">About</h2>
            <dl class="facts" data-testid="cohort-facts">
              <dt>Kind</dt>
              <dd data-testid="cohort-kind">{cohort.kind}</dd>
              <dt>Count</dt>
              <dd data-testid="cohort-count">{cohort.count}</dd>
              <dt>Version</dt>
              <dd data-testid="cohort-version">{cohort.version}</dd>
              <dt>Computed at</dt>
              <dd data-testid="cohort-computed-at">
                {cohort.computed_at ? <time dateTime={cohort.computed_at}>{formatTime(cohort.computed_at)}</time> : "never"}
              </dd>
              {cohort.kind === "static" && (
                <>
                  <dt>Distinct ids</dt>
                  <dd data-testid="cohort-distinct-ids-count">{cohort.distinct_ids_count}</dd>
                  <dt>Unmatched</dt>
                  <dd data-testid="cohort-unmatched">{cohort.unmatched}</dd>
                </>
              )}
              {cohort.kind === "dynamic" && (
                <>
                  <dt>Matching</dt>
                  <dd>{cohort.match === "any" ? "any of the filters" : "all of the filters"}</dd>
                </>
              )}
            </dl>
            {cohort.kind === "dynamic" && (
              <ul class="plain-list" data-testid="cohort-filters" aria-label="Filters">
                {(cohort.filters ?? []).map((f) => (
                  <li>{describeFilter(f)}</li>
                ))}
              </ul>
            )}
            <div class="form-actions cohort-actions">
              <button type="button" data-testid="cohort-refresh" disabled={busy !== null} onClick={refresh}>
                {busy === "refresh" ? "Refreshing…" : "Refresh"}
              </button>
              <button type="button" class="remove" data-testid="cohort-delete" disabled={busy !== null} onClick={remove}>
                {busy === "delete" ? "Deleting…" : "Delete"}
              </button>
            </div>
          </section>
          <section class="card" aria-labelledby="cohort-members-title" aria-busy={membersLoading ? "true" : "false"}>
            <h2 id="cohort-members-title">Members</h2>
            <div class="table-wrap">
              <table data-testid="cohort-members">
                <caption>Members of version {cohort.version}</caption>
                <thead>
                  <tr>
                    <th scope="col">Person id</th>
                    <th scope="col">Distinct ids</th>
                    <th scope="col">Properties</th>
                  </tr>
                </thead>
                <tbody>
                  {members.map((p) => (
                    <tr data-person-id={p.id}>
                      <th scope="row">{p.id}</th>
                      <td class="props-cell">
                        {p.distinct_ids.map((d, n) => (
                          <>
                            {n > 0 && ", "}
                            <a href={`/persons/${encodeURIComponent(d)}`}>{d}</a>
                          </>
                        ))}
                      </td>
                      <td class="props-cell">{fewProperties(p.properties)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {!membersLoading && members.length === 0 && <p class="no-data">No members</p>}
            </div>
            {membersLoading && (
              <p class="loading" data-testid="loading">
                Loading…
              </p>
            )}
            {cursor && !membersLoading && (
              <button type="button" data-testid="load-more" onClick={() => list.load(cursor)}>
                Load more
              </button>
            )}
          </section>
        </div>
      )}
    </>
  );
}
