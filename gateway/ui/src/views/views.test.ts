import { describe, expect, it } from "vitest";
import { perMinuteSeries, stacked } from "./Dashboard";
import { namespaceTree } from "./Flows";
import { kvBody } from "./KV";
import { bucketLabel } from "./Triggers";

describe("views' logic", () => {
  it("builds the namespace tree with counts", () => {
    const tree = namespaceTree(["shop.orders", "shop.orders", "shop.billing", "iot"]);
    expect(tree.map((n) => [n.full, n.count])).toEqual([
      ["iot", 1],
      ["shop", 3],
    ]);
    expect(tree[1].children.map((n) => [n.full, n.count])).toEqual([
      ["shop.billing", 1],
      ["shop.orders", 2],
    ]);
  });

  it("sends KV values with their type", () => {
    expect(kvBody("STRING", "hi")).toEqual({ body: '"hi"', contentType: "application/json" });
    expect(kvBody("NUMBER", "25")).toEqual({ body: "25", contentType: "application/json" });
    expect(() => kvBody("JSON", "{")).toThrow();
  });

  it("stacks per-state counts", () => {
    expect(stacked({ SUCCESS: [1, 2], FAILED: [3, 0] }, ["SUCCESS", "FAILED"])).toEqual({
      SUCCESS: [1, 2],
      FAILED: [4, 2],
    });
  });

  it("labels latency buckets by their upper bound", () => {
    const bounds = [0.001, 0.0025, 1.0];
    expect([0, 1, 2, 3].map((i) => bucketLabel(bounds, i))).toEqual(["≤1ms", "≤2.5ms", "≤1s", "more"]);
  });

  it("puts per-minute counts on a fixed 60-minute axis", () => {
    const now = Date.parse("2026-12-06T10:30:20Z");
    const { x, series } = perMinuteSeries(
      {
        since: "",
        running: 0,
        success: 3,
        failed: 1,
        successRate: 0.75,
        perMinute: [
          { minute: "2026-12-06T10:30:00Z", state: "SUCCESS", count: 3 },
          { minute: "2026-12-06T10:29:00Z", state: "FAILED", count: 1 },
          { minute: "2026-12-06T08:00:00Z", state: "FAILED", count: 9 },
        ],
      },
      now,
    );
    expect(x).toHaveLength(60);
    expect(x[59]).toBe(Date.parse("2026-12-06T10:30:00Z") / 1000);
    expect(series.SUCCESS[59]).toBe(3);
    expect(series.FAILED[58]).toBe(1);
    expect(series.FAILED.reduce((a, b) => a + b, 0)).toBe(1);
  });
});
