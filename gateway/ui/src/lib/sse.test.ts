import { describe, expect, it } from "vitest";
import { readEvents, SseParser, type SseMessage } from "./sse";

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

describe("readEvents", () => {
  it("reads a streamed response body to its end", async () => {
    const encoder = new TextEncoder();
    const chunks = ['data: {"state":"RUN', 'NING"}\n\n: keepalive\n\n', 'data: {"state":"SUCCESS"}\n\n'];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(encoder.encode(c));
        controller.close();
      },
    });
    const seen: SseMessage[] = [];
    await readEvents(new Response(body), (m) => seen.push(m));
    expect(seen.map((m) => JSON.parse(m.data).state)).toEqual(["RUNNING", "SUCCESS"]);
  });
});
