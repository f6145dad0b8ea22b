/** A flow's topology as nodes and edges (tasks, nested flowables, errors/finally, triggers),
 * laid out with dagre. */
import dagre from "@dagrejs/dagre";

type Task = Record<string, unknown>;

export interface TopoNode {
  id: string;
  label: string;
  kind: "task" | "trigger" | "start" | "end" | "group";
  type: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface TopoEdge {
  from: string;
  to: string;
  label?: string;
  points: Array<{ x: number; y: number }>;
}

export interface Topology {
  nodes: TopoNode[];
  edges: TopoEdge[];
  width: number;
  height: number;
}

/** Child branches of a flowable task: name → task list. */
export function branches(task: Task): Array<[string, Task[]]> {
  const out: Array<[string, Task[]]> = [];
  for (const key of ["tasks", "then", "else", "errors", "finally"]) {
    const value = task[key];
    if (Array.isArray(value) && value.length) out.push([key, value as Task[]]);
  }
  const cases = task["cases"];
  if (cases && typeof cases === "object" && !Array.isArray(cases)) {
    for (const [name, list] of Object.entries(cases as Record<string, unknown>)) {
      if (Array.isArray(list)) out.push([`case ${name}`, list as Task[]]);
    }
  }
  const defaults = task["defaults"];
  if (Array.isArray(defaults) && defaults.length && String(task["type"]).includes("Switch")) {
    out.push(["default", defaults as Task[]]);
  }
  return out;
}

interface Graph {
  nodes: Array<Omit<TopoNode, "x" | "y">>;
  edges: Array<{ from: string; to: string; label?: string }>;
}

const W = 170;
const H = 44;

/** The graph before layout: pure, unit-tested. */
export function flowGraph(flow: {
  tasks?: Task[];
  errors?: Task[];
  finally?: Task[];
  triggers?: Task[];
}): Graph {
  const graph: Graph = { nodes: [], edges: [] };
  const node = (id: string, label: string, kind: TopoNode["kind"], type = "") =>
    graph.nodes.push({ id, label, kind, type, width: W, height: H });

  // Returns the [entry, exits] of a sequence of tasks.
  const sequence = (tasks: Task[], prefix: string): [string[], string[]] => {
    let entries: string[] = [];
    let exits: string[] = [];
    tasks.forEach((task, index) => {
      const [ins, outs] = one(task, prefix);
      if (index === 0) entries = ins;
      else for (const e of exits) for (const i of ins) graph.edges.push({ from: e, to: i });
      exits = outs;
    });
    return [entries, exits];
  };

  // A Dag's nodes wait for their dependsOn; those nothing waits for end it.
  const dag = (task: Task, id: string): string[] => {
    const nodes = (task["tasks"] as Array<{ task?: Task; dependsOn?: string[] }>) ?? [];
    const waitedFor = new Set(nodes.flatMap((n) => n.dependsOn ?? []));
    const exits: string[] = [];
    for (const n of nodes) {
      if (!n.task) continue;
      const [ins, outs] = one(n.task, `${id}/`);
      const deps = n.dependsOn ?? [];
      if (!deps.length) for (const i of ins) graph.edges.push({ from: id, to: i });
      for (const dep of deps) for (const i of ins) graph.edges.push({ from: `${id}/${dep}`, to: i });
      if (!waitedFor.has(String(n.task["id"]))) exits.push(...outs);
    }
    return exits.length ? exits : [id];
  };

  const one = (task: Task, prefix: string): [string[], string[]] => {
    const id = `${prefix}${String(task["id"])}`;
    const type = String(task["type"] ?? "");
    node(id, String(task["id"]), "task", type);
    if (type.endsWith("Dag")) return [[id], dag(task, id)];
    const kids = branches(task);
    if (!kids.length) return [[id], [id]];
    const exits: string[] = [];
    const parallel = type.endsWith("Parallel");
    for (const [name, list] of kids) {
      if (parallel && name === "tasks") {
        // Every child starts with the Parallel task; it ends when they all have.
        for (const child of list) {
          const [ins, outs] = one(child, `${id}/`);
          for (const i of ins) graph.edges.push({ from: id, to: i });
          exits.push(...outs);
        }
        continue;
      }
      const [ins, outs] = sequence(list, `${id}/`);
      for (const i of ins) graph.edges.push({ from: id, to: i, label: name });
      if (name === "errors" || name === "finally") continue;
      exits.push(...outs);
    }
    return [[id], exits.length ? exits : [id]];
  };

  node("__start", "start", "start");
  for (const trigger of flow.triggers ?? []) {
    const id = `trigger:${String(trigger["id"])}`;
    node(id, String(trigger["id"]), "trigger", String(trigger["type"] ?? ""));
    graph.edges.push({ from: id, to: "__start" });
  }
  const [ins, outs] = sequence(flow.tasks ?? [], "");
  for (const i of ins) graph.edges.push({ from: "__start", to: i });
  node("__end", "end", "end");
  for (const o of outs.length ? outs : ["__start"]) graph.edges.push({ from: o, to: "__end" });
  for (const [name, list] of [
    ["errors", flow.errors ?? []],
    ["finally", flow.finally ?? []],
  ] as Array<[string, Task[]]>) {
    if (!list.length) continue;
    const [eIns] = sequence(list, `${name}:`);
    for (const i of eIns) graph.edges.push({ from: "__start", to: i, label: name });
  }
  return graph;
}

export function layoutTopology(flow: Parameters<typeof flowGraph>[0]): Topology {
  const graph = flowGraph(flow);
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 48, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) g.setNode(n.id, { width: n.width, height: n.height });
  for (const e of graph.edges) g.setEdge(e.from, e.to, { label: e.label });
  dagre.layout(g);
  const nodes = graph.nodes.map((n) => {
    const laid = g.node(n.id);
    return { ...n, x: laid.x - n.width / 2, y: laid.y - n.height / 2 };
  });
  const edges = graph.edges.map((e) => ({
    ...e,
    points: (g.edge(e.from, e.to)?.points ?? []) as Array<{ x: number; y: number }>,
  }));
  const size = g.graph();
  return { nodes, edges, width: size.width ?? 400, height: size.height ?? 200 };
}
