import { describe, expect, it } from "vitest";
import { SseParser, backoffDelay, sinceFromEventId } from "./sse";

describe("SseParser", () => {
  it("parses named events with ids and skips keepalive comments", () => {
    const p = new SseParser();
    const out = p.push(': keepalive\n\nid: 2024-01-01T00:00:00Z|u1\nevent: event\ndata: {"uuid":"u1"}\n\n');
    expect(out).toEqual([{ event: "event", data: '{"uuid":"u1"}', id: "2024-01-01T00:00:00Z|u1" }]);
    expect(p.lastEventId).toBe("2024-01-01T00:00:00Z|u1");
  });

  it("joins messages split across chunks, including a CRLF split in two", () => {
    const p = new SseParser();
    expect(p.push("event: ev")).toEqual([]);
    expect(p.push("ent\r")).toEqual([]);
    expect(p.push("\ndata: a\r\ndata: b\r\n")).toEqual([]);
    expect(p.push("\r\n")).toEqual([{ event: "event", data: "a\nb", id: null }]);
  });

  it("defaults the type to message, strips one space only, ignores data-less blocks", () => {
    const p = new SseParser();
    expect(p.push("event: x\n\ndata:  two\n\n")).toEqual([{ event: "message", data: " two", id: null }]);
  });

  it("handles lone CR line endings and error events", () => {
    const p = new SseParser();
    const out = p.push('event: error\rdata: {"type":"error","detail":"nope"}\r\rdata: x\r');
    expect(out).toEqual([{ event: "error", data: '{"type":"error","detail":"nope"}', id: null }]);
  });
});

describe("reconnection helpers", () => {
  it("takes the inserted time before the pipe", () => {
    expect(sinceFromEventId("2024-05-01T10:00:00.123+00:00|abc")).toBe("2024-05-01T10:00:00.123+00:00");
    expect(sinceFromEventId(null)).toBeNull();
    expect(sinceFromEventId("")).toBeNull();
  });

  it("backs off exponentially up to 30 s", () => {
    expect([0, 1, 2, 3, 10].map(backoffDelay)).toEqual([1000, 2000, 4000, 8000, 30000]);
  });
});
