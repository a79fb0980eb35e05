import { useEffect, useState } from "preact/hooks";
import { useCursorList, type CursorPage } from "../paging";
import { useTitle } from "../router";
import { fewProperties, formatTime } from "../format";
import type { PersonSummary } from "../types";
import { Alert } from "../components/Notices";

const PAGE_SIZE = 50;

export function PersonsPage({ search }: { search: string }) {
  useTitle("Persons");
  const initial = new URLSearchParams(search).get("search") ?? "";
  const [text, setText] = useState(initial);
  const [searched, setSearched] = useState(initial);
  const list = useCursorList<PersonSummary, { persons: PersonSummary[] } & CursorPage>("/api/persons", PAGE_SIZE, (page) => page.persons);
  const { items: persons, cursor, loading, error } = list;
  const load = (term: string, after: string | null) => list.load(after, { search: term });

  useEffect(() => {
    load(initial, null);
  }, []);

  const submit = (e: Event) => {
    e.preventDefault();
    setSearched(text);
    history.replaceState(history.state, "", text ? `/persons?search=${encodeURIComponent(text)}` : "/persons");
    load(text, null);
  };

  return (
    <>
      <h1>Persons</h1>
      <form class="card inline-form" role="search" onSubmit={submit}>
        <label class="field grow">
          <span class="field-label">Search by distinct id or property</span>
          <input type="search" name="search" value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <button type="submit" class="primary">
          Search
        </button>
      </form>
      <section class="result" aria-busy={loading ? "true" : "false"} aria-label="Persons">
        <Alert text={error} />
        <div class="table-wrap">
          <table data-testid="persons-table">
            <caption>{searched ? `Persons matching “${searched}”` : "All persons"}</caption>
            <thead>
              <tr>
                <th scope="col">Distinct ids</th>
                <th scope="col">Properties</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {persons.map((p) => (
                <tr>
                  <th scope="row">
                    <a href={`/persons/${encodeURIComponent(p.distinct_ids[0] ?? "")}`}>{p.distinct_ids.join(", ")}</a>
                  </th>
                  <td class="props-cell">{fewProperties(p.properties)}</td>
                  <td>{formatTime(p.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {!loading && !error && persons.length === 0 && <p class="no-data">No persons found</p>}
        </div>
        {loading && (
          <p class="loading" data-testid="loading">
            Loading…
          </p>
        )}
        {cursor && !loading && (
          <button type="button" data-testid="load-more" onClick={() => load(searched, cursor)}>
            Load more
          </button>
        )}
      </section>
    </>
  );
}
