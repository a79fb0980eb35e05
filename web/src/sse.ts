// A Server-Sent Events stream parser (the WHATWG event-stream format), fed text chunks as they arrive.

export interface SseMessage {
  event: string;
  data: string;
  /** The last `id:` seen so far in the stream (ids persist across messages). */
  id: string | null;
}

export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private eventType = "";
  private lastId: string | null = null;
  private sawData = false;

  /** Feeds a chunk of decoded text; returns the messages it completed. */
  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const messages: SseMessage[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      if (ch === "\r" && i + 1 === this.buffer.length) break; // may be the first half of \r\n: wait for more
      const line = this.buffer.slice(start, i);
      if (ch === "\r" && this.buffer[i + 1] === "\n") i++;
      start = i + 1;
      const message = this.line(line);
      if (message) messages.push(message);
    }
    this.buffer = this.buffer.slice(start);
    return messages;
  }

  get lastEventId(): string | null {
    return this.lastId;
  }

  private line(line: string): SseMessage | null {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null; // a comment, such as the server's keepalive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      this.data.push(value);
      this.sawData = true;
    } else if (field === "event") {
      this.eventType = value;
    } else if (field === "id" && !value.includes("\0")) {
      this.lastId = value;
    }
    return null;
  }

  private dispatch(): SseMessage | null {
    const message: SseMessage | null = this.sawData
      ? { event: this.eventType || "message", data: this.data.join("\n"), id: this.lastId }
      : null;
    this.data = [];
    this.eventType = "";
    this.sawData = false;
    return message;
  }
}

/** The live stream's ids are `<inserted_at ISO>|<uuid>`; reconnecting resumes from the inserted time. */
export function sinceFromEventId(id: string | null): string | null {
  if (!id) return null;
  const since = id.split("|")[0];
  return since || null;
}

/** Reconnect delay in ms after `attempt` failures in a row: 1 s, 2 s, 4 s, … capped at 30 s. */
export function backoffDelay(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, attempt));
}
