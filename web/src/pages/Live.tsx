import { useEffect, useRef, useState } from "preact/hooks";
import { connectLive, type LiveStatus } from "../live";
import { useDefinitions } from "../project";
import { useTitle } from "../router";
import { formatTime } from "../format";
import { EmptyState } from "../components/EmptyState";
import { SelectField } from "../components/Pickers";
import type { AnalyticsEvent } from "../types";
import { Alert } from "../components/Notices";

const MAX_ITEMS = 500;
const STATUS_TEXT: Record<LiveStatus, string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  stopped: "Disconnected",
};

export function LivePage() {
  useTitle("Live events");
  const { definitions, error: defsError } = useDefinitions();
  const [eventName, setEventName] = useState("");
  const [items, setItems] = useState<AnalyticsEvent[]>([]);
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const [error, setError] = useState<string | null>(null);
  const [paused, setPaused] = useState(false);
  const [bufferedCount, setBufferedCount] = useState(0);
  const pausedRef = useRef(false);
  const buffer = useRef<AnalyticsEvent[]>([]);
  const seen = useRef(new Set<string>());

  useEffect(() => {
    setItems([]);
    buffer.current = [];
    setBufferedCount(0);
    seen.current = new Set();
    setError(null);
    return connectLive(eventName, {
      onStatus: setStatus,
      onError: setError,
      onEvent: (ev) => {
        // A reconnect resumes from the last insert time, so the first events may repeat.
        if (seen.current.has(ev.uuid)) return;
        seen.current.add(ev.uuid);
        if (seen.current.size > 4 * MAX_ITEMS) seen.current = new Set([...seen.current].slice(-2 * MAX_ITEMS));
        setError(null);
        if (pausedRef.current) {
          buffer.current = [ev, ...buffer.current].slice(0, MAX_ITEMS);
          setBufferedCount(buffer.current.length);
        } else {
          setItems((prev) => [ev, ...prev].slice(0, MAX_ITEMS));
        }
      },
    });
  }, [eventName]);

  const togglePause = () => {
    if (pausedRef.current) {
      const held = buffer.current;
      buffer.current = [];
      setBufferedCount(0);
      setItems((prev) => [...held, ...prev].slice(0, MAX_ITEMS));
    }
    pausedRef.current = !pausedRef.current;
    setPaused(pausedRef.current);
  };

  const noEvents = definitions !== null && definitions.events.length === 0;

  return (
    <>
      <h1>Live events</h1>
      <Alert text={defsError} />
      {noEvents && <EmptyState />}
      <div class="card live-controls">
        <SelectField
          label="Event"
          name="event"
          value={eventName}
          options={[{ value: "", text: "All events" }, ...(definitions?.events ?? []).map((e) => ({ value: e, text: e }))]}
          onChange={setEventName}
        />
        <button type="button" data-testid="live-pause" aria-pressed={paused ? "true" : "false"} onClick={togglePause}>
          {paused ? "Resume" : "Pause"}
        </button>
        {paused && (
          <span class="buffered" data-testid="live-buffered">
            {bufferedCount} new
          </span>
        )}
        <span class={`status status-${status}`} role="status" data-testid="live-status">
          {STATUS_TEXT[status]}
        </span>
      </div>
      <Alert text={error} />
      <section class="card" aria-labelledby="live-list-title">
        <h2 id="live-list-title">Newest first</h2>
        <ul data-testid="live-events" class="live-list">
          {items.map((ev) => (
            <li key={ev.uuid} data-uuid={ev.uuid}>
              <span class="event-name">{ev.event}</span>
              <span class="distinct-id">{ev.distinct_id}</span>
              <time dateTime={ev.timestamp}>{formatTime(ev.timestamp)}</time>
            </li>
          ))}
        </ul>
        {items.length === 0 && <p class="no-data">Waiting for events…</p>}
      </section>
    </>
  );
}
