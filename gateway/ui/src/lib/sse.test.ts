import { describe, expect, it } from "vitest";
import { SseParser } from "./sse";

describe("SseParser", () => {
  it("parses messages split anywhere, with ids, events and comments", () => {
    const parser = new SseParser();
    const text = ': keepalive\n\nid: 7\nevent: log\ndata: {"a":1}\n\ndata: line1\ndata: line2\n\n';
    const out = [];
    for (let i = 0; i < text.length; i += 3) out.push(...parser.feed(text.slice(i, i + 3)));
    expect(out).toEqual([
      { event: "log", data: '{"a":1}', id: "7" },
      { event: "message", data: "line1\nline2", id: "7" },
    ]);
  });

  it("accepts CRLF line endings and waits for the blank line", () => {
    const parser = new SseParser();
    expect(parser.feed("data: x\r\n")).toEqual([]);
    expect(parser.feed("\r\n")).toEqual([{ event: "message", data: "x" }]);
  });
});
