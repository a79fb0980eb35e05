import { useEffect, useState } from "preact/hooks";
import { useCursorList } from "../paging";
import { useTitle } from "../router";
import { formatTime, propertyText } from "../format";
import type { AnalyticsEvent, Person } from "../types";
import { Alert } from "../components/Notices";

const PAGE_SIZE = 50;

export function PersonPage({ distinctId }: { distinctId: string }) {
  useTitle(`Person ${distinctId}`);
  const [person, setPerson] = useState<Person | null>(null);
  const list = useCursorList<AnalyticsEvent, Person>(`/api/persons/${encodeURIComponent(distinctId)}`, PAGE_SIZE, (page) => page.events);
  const { items: events, cursor, loading, error } = list;
  const load = async (after: string | null) => {
    const page = await list.load(after);
    if (page && !after) setPerson(page);
  };

  useEffect(() => {
    load(null);
  }, []);

  const properties = Object.entries(person?.properties ?? {});

  return (
    <>
      <p class="breadcrumb">
        <a href="/persons">← Persons</a>
      </p>
      <h1>Person {distinctId}</h1>
      <Alert text={error} />
      {loading && !person && (
        <p class="loading" data-testid="loading">
          Loading…
        </p>
      )}
      {person && (
        <div class="person-layout">
          <section class="card" aria-labelledby="person-about">
            <h2 id="person-about">About</h2>
            <dl class="facts">
              <dt>Person id</dt>
              <dd>{person.id}</dd>
              <dt>Identified</dt>
              <dd>{person.is_identified ? "Yes" : "No"}</dd>
              <dt>Created</dt>
              <dd>{formatTime(person.created_at)}</dd>
            </dl>
            <h3>Distinct ids</h3>
            <ul data-testid="person-distinct-ids" class="plain-list">
              {person.distinct_ids.map((id) => (
                <li>{id}</li>
              ))}
            </ul>
            <div class="table-wrap">
              <table data-testid="person-properties">
                <caption>Properties</caption>
                <thead>
                  <tr>
                    <th scope="col">Property</th>
                    <th scope="col">Value</th>
                  </tr>
                </thead>
                <tbody>
                  {properties.map(([key, value]) => (
                    <tr>
                      <th scope="row">{key}</th>
                      <td>{propertyText(value)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {properties.length === 0 && <p class="no-data">No properties</p>}
            </div>
          </section>
          <section class="card" aria-labelledby="person-events-title">
            <h2 id="person-events-title">Events</h2>
            <ol data-testid="person-events" class="timeline">
              {events.map((ev) => (
                <li data-uuid={ev.uuid}>
                  <details>
                    <summary>
                      <span class="event-name">{ev.event}</span> <time dateTime={ev.timestamp}>{formatTime(ev.timestamp)}</time>
                    </summary>
                    <pre>{JSON.stringify(ev.properties ?? {}, null, 2)}</pre>
                  </details>
                </li>
              ))}
            </ol>
            {events.length === 0 && !loading && <p class="no-data">No events</p>}
            {cursor && (
              <button type="button" data-testid="load-more" disabled={loading} onClick={() => load(cursor)}>
                Load more
              </button>
            )}
          </section>
        </div>
      )}
    </>
  );
}
