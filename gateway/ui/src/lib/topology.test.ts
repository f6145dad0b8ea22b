import { describe, expect, it } from "vitest";
import { flowGraph, layoutTopology } from "./topology";

const flow = {
  triggers: [{ id: "hook", type: "trigger.Webhook" }],
  tasks: [
    { id: "first", type: "core.Log" },
    { id: "branch", type: "flow.If", then: [{ id: "yes", type: "core.Log" }], else: [{ id: "no", type: "core.Log" }] },
    { id: "last", type: "core.Log" },
  ],
  errors: [{ id: "on-error", type: "core.Log" }],
};

describe("flowGraph", () => {
  it("links triggers, tasks, branches and the errors branch", () => {
    const g = flowGraph(flow);
    const ids = g.nodes.map((n) => n.id);
    expect(ids).toEqual(expect.arrayContaining(["trigger:hook", "first", "branch", "branch/yes", "branch/no", "last", "errors:on-error"]));
    const edges = g.edges.map((e) => `${e.from}>${e.to}${e.label ? `:${e.label}` : ""}`);
    expect(edges).toEqual(
      expect.arrayContaining([
        "trigger:hook>__start",
        "__start>first",
        "first>branch",
        "branch>branch/yes:then",
        "branch>branch/no:else",
        "branch/yes>last",
        "branch/no>last",
        "last>__end",
        "__start>errors:on-error:errors",
      ]),
    );
  });

  it("fans a Parallel's children out and a Dag's nodes by their dependencies", () => {
    const g = flowGraph({
      tasks: [
        { id: "par", type: "flow.Parallel", tasks: [{ id: "a", type: "core.Log" }, { id: "b", type: "core.Log" }] },
        {
          id: "dag",
          type: "flow.Dag",
          tasks: [
            { task: { id: "x", type: "core.Log" } },
            { task: { id: "y", type: "core.Log" }, dependsOn: ["x"] },
          ],
        },
      ],
    });
    const edges = g.edges.map((e) => `${e.from}>${e.to}`);
    expect(edges).toEqual(expect.arrayContaining(["par>par/a", "par>par/b", "par/a>dag", "par/b>dag", "dag>dag/x", "dag/x>dag/y", "dag/y>__end"]));
    expect(edges).not.toContain("par/a>par/b");
    expect(edges).not.toContain("dag/x>__end");
  });

  it("lays every node out with dagre", () => {
    const t = layoutTopology(flow);
    expect(t.nodes.every((n) => Number.isFinite(n.x) && Number.isFinite(n.y))).toBe(true);
    expect(t.edges.every((e) => e.points.length >= 2)).toBe(true);
    expect(t.width).toBeGreaterThan(0);
  });
});
