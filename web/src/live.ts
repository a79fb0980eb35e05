// The /api/live stream, read with fetch() because EventSource cannot send the Authorization header.
import { authHeaders, errorFromResponse } from "./api";
import { SseParser, backoffDelay, sinceFromEventId } from "./sse";
import type { AnalyticsEvent } from "./types";

export type LiveStatus = "connecting" | "connected" | "reconnecting" | "stopped";

export interface LiveHandlers {
  onEvent: (event: AnalyticsEvent) => void;
  onStatus: (status: LiveStatus) => void;
  onError: (detail: string) => void;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Streams live events until the returned function is called, reconnecting with backoff from the last seen insert time. */
export function connectLive(eventName: string, handlers: LiveHandlers): () => void {
  const controller = new AbortController();
  const { signal } = controller;
  let since: string | null = null;
  let attempt = 0;

  const once = async (): Promise<"retry" | "stop"> => {
    const params = new URLSearchParams();
    if (eventName) params.set("event", eventName);
    if (since) params.set("since", since);
    const query = params.toString();
    const res = await fetch(`/api/live${query ? `?${query}` : ""}`, { headers: authHeaders(), signal });
    if (!res.ok) {
      handlers.onError((await errorFromResponse(res)).detail);
      // A client error (bad key, unknown event…) will not heal by retrying.
      return res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429 ? "stop" : "retry";
    }
    handlers.onStatus("connected");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return "retry";
      for (const message of parser.push(decoder.decode(value, { stream: true }))) {
        since = sinceFromEventId(message.id) ?? since;
        if (message.event === "event") {
          attempt = 0;
          try {
            handlers.onEvent(JSON.parse(message.data));
          } catch {
            // A malformed message is skipped, not fatal to the stream.
          }
        } else if (message.event === "error") {
          let detail = message.data;
          try {
            detail = JSON.parse(message.data).detail ?? detail;
          } catch {
            // keep the raw text
          }
          handlers.onError(detail);
        }
      }
    }
  };

  (async () => {
    handlers.onStatus("connecting");
    while (!signal.aborted) {
      let outcome: "retry" | "stop" = "retry";
      try {
        outcome = await once();
      } catch {
        outcome = "retry";
      }
      if (signal.aborted) return;
      if (outcome === "stop") {
        handlers.onStatus("stopped");
        return;
      }
      handlers.onStatus("reconnecting");
      await sleep(backoffDelay(attempt++), signal);
    }
  })();

  return () => controller.abort();
}
