/** The Gantt layout of an execution's task runs and attempts: pure, so it is unit-tested. */
import type { TaskRun } from "../api";

export interface Bar {
  left: number; // percent of the span
  width: number; // percent of the span, at least a sliver
  state: string;
}

export interface GanttRow {
  id: string;
  label: string;
  depth: number;
  state: string;
  run: Bar;
  attempts: Bar[];
  durationMs: number;
}

export interface Gantt {
  startMs: number;
  spanMs: number;
  rows: GanttRow[];
}

const MIN_WIDTH = 0.3;

function ms(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

function bar(start: number, end: number, origin: number, span: number, state: string): Bar {
  const left = ((start - origin) / span) * 100;
  const width = Math.max(MIN_WIDTH, ((end - start) / span) * 100);
  return { left: Math.max(0, Math.min(left, 100 - MIN_WIDTH)), width: Math.min(width, 100), state };
}

/** Order task runs parent-first (children under their parent) and give each its depth. */
export function treeOrder(runs: TaskRun[]): Array<{ run: TaskRun; depth: number }> {
  const ids = new Set(runs.map((r) => r.id));
  const children = new Map<string | null, TaskRun[]>();
  for (const run of runs) {
    const parent = run.parentTaskRunId && ids.has(run.parentTaskRunId) ? run.parentTaskRunId : null;
    const list = children.get(parent) ?? [];
    list.push(run);
    children.set(parent, list);
  }
  const out: Array<{ run: TaskRun; depth: number }> = [];
  const stack: Array<{ run: TaskRun; depth: number }> = (children.get(null) ?? [])
    .slice()
    .reverse()
    .map((run) => ({ run, depth: 0 }));
  while (stack.length) {
    const item = stack.pop()!;
    out.push(item);
    const kids = children.get(item.run.id) ?? [];
    for (let i = kids.length - 1; i >= 0; i--) stack.push({ run: kids[i], depth: item.depth + 1 });
  }
  return out;
}

/** Lay out task runs on one time axis; unfinished ones extend to `nowMs`. */
export function layoutGantt(runs: TaskRun[], nowMs: number): Gantt {
  let start = Infinity;
  let end = -Infinity;
  for (const run of runs) {
    const s = ms(run.state.startDate) ?? ms(run.state.histories[0]?.date);
    if (s !== null) start = Math.min(start, s);
    const e = ms(run.state.endDate) ?? nowMs;
    end = Math.max(end, e);
  }
  if (!Number.isFinite(start)) return { startMs: nowMs, spanMs: 1, rows: [] };
  const span = Math.max(1, end - start);
  const rows = treeOrder(runs).map(({ run, depth }) => {
    const s = ms(run.state.startDate) ?? ms(run.state.histories[0]?.date) ?? start;
    const e = ms(run.state.endDate) ?? nowMs;
    const attempts = run.attempts
      .map((a) => {
        const as = ms(a.state.startDate);
        if (as === null) return null;
        return bar(as, ms(a.state.endDate) ?? nowMs, start, span, a.state.current);
      })
      .filter((a): a is Bar => a !== null);
    const label = run.value ? `${run.taskId} [${run.value}]` : run.taskId;
    return {
      id: run.id,
      label,
      depth,
      state: run.state.current,
      run: bar(s, e, start, span, run.state.current),
      attempts,
      durationMs: e - s,
    };
  });
  return { startMs: start, spanMs: span, rows };
}
