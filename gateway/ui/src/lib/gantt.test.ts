import { describe, expect, it } from "vitest";
import type { TaskRun } from "../api";
import { layoutGantt, treeOrder } from "./gantt";

function run(id: string, start: number, end: number | null, parent?: string, state = "SUCCESS"): TaskRun {
  const iso = (t: number) => new Date(t).toISOString();
  return {
    id,
    taskId: id,
    parentTaskRunId: parent ?? null,
    state: { current: end === null ? "RUNNING" : state, histories: [{ state: "CREATED", date: iso(start) }], startDate: iso(start), endDate: end === null ? null : iso(end) },
    attempts: [{ number: 1, state: { current: state, histories: [], startDate: iso(start), endDate: end === null ? null : iso(end) } }],
  };
}

describe("layoutGantt", () => {
  it("puts runs on one axis, children under their parent", () => {
    const g = layoutGantt([run("a", 0, 1000), run("c", 500, 1000, "b"), run("b", 400, 1000)], 5000);
    expect(g.rows.map((r) => [r.id, r.depth])).toEqual([
      ["a", 0],
      ["b", 0],
      ["c", 1],
    ]);
    expect(g.spanMs).toBe(1000);
    expect(g.rows[0].run).toMatchObject({ left: 0, width: 100 });
    expect(g.rows[2].run.left).toBeCloseTo(50);
    expect(g.rows[2].attempts).toHaveLength(1);
  });

  it("stretches unfinished runs to now", () => {
    const g = layoutGantt([run("a", 0, 1000), run("b", 1000, null)], 4000);
    expect(g.spanMs).toBe(4000);
    expect(g.rows[1].run.width).toBeCloseTo(75);
    expect(g.rows[1].state).toBe("RUNNING");
  });

  it("lays out 1,000 task runs quickly enough to stay interactive", () => {
    const runs = Array.from({ length: 1000 }, (_, i) => run(`t${i}`, i * 10, i * 10 + 50));
    const g = layoutGantt(runs, 20000);
    expect(g.rows).toHaveLength(1000);
    expect(treeOrder(runs)).toHaveLength(1000);
  });
});
