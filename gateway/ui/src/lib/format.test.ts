import { describe, expect, it } from "vitest";
import { formatMillis, formatSeconds, hexDump, prettyJson } from "./format";

describe("format", () => {
  it("formats durations and latencies", () => {
    expect(formatMillis(850)).toBe("850ms");
    expect(formatMillis(12_300)).toBe("12.3s");
    expect(formatMillis(245_000)).toBe("4m 05s");
    expect(formatSeconds(0.0031)).toBe("3.10 ms");
    expect(formatSeconds(null)).toBe("–");
  });

  it("previews payloads as hex and JSON", () => {
    expect(hexDump(btoa("{}"))).toBe("000000  7b 7d");
    expect(prettyJson('{"a":1}')).toBe('{\n  "a": 1\n}');
    expect(prettyJson("not json")).toBeNull();
  });
});
