import { memo, useMemo } from "react";
import type { TaskRun } from "../api";
import { formatMillis, stateColor } from "../lib/format";
import { layoutGantt, type GanttRow } from "../lib/gantt";

const Row = memo(function Row({
  row,
  selected,
  onSelect,
  onReplay,
}: {
  row: GanttRow;
  selected: boolean;
  onSelect: (id: string) => void;
  onReplay?: (id: string) => void;
}) {
  return (
    <div className={`gantt-row${selected ? " selected" : ""}`} data-task-run={row.id} data-state={row.state}>
      <div className="gantt-label" style={{ paddingLeft: 6 + row.depth * 14 }} onClick={() => onSelect(row.id)} title={row.label}>
        {row.label}
      </div>
      <div className="gantt-track" onClick={() => onSelect(row.id)}>
        <div className="gantt-bar" style={{ left: `${row.run.left}%`, width: `${row.run.width}%`, background: stateColor(row.state), opacity: 0.35 }} />
        {row.attempts.map((a, i) => (
          <div key={i} className="gantt-attempt" title={`attempt ${i + 1}: ${a.state}`} style={{ left: `${a.left}%`, width: `${a.width}%`, background: stateColor(a.state) }} />
        ))}
      </div>
      <div className="gantt-meta">
        <span className="gantt-state">{row.state}</span> {formatMillis(row.durationMs)}
        {onReplay && (
          <button className="small" title="replay from this task run" onClick={() => onReplay(row.id)}>
            Replay
          </button>
        )}
      </div>
    </div>
  );
});

/** The task runs of an execution on one time axis, attempts drawn inside their run. */
export function Gantt({
  runs,
  now,
  selected,
  onSelect,
  onReplay,
}: {
  runs: TaskRun[];
  now: number;
  selected: string | null;
  onSelect: (id: string) => void;
  onReplay?: (id: string) => void;
}) {
  const gantt = useMemo(() => layoutGantt(runs, now), [runs, now]);
  if (!gantt.rows.length) return <p className="muted">No task run yet.</p>;
  return (
    <div className="gantt" data-rows={gantt.rows.length}>
      <div className="gantt-axis">
        <span>0</span>
        <span>{formatMillis(gantt.spanMs / 2)}</span>
        <span>{formatMillis(gantt.spanMs)}</span>
      </div>
      {gantt.rows.map((row) => (
        <Row key={row.id} row={row} selected={row.id === selected} onSelect={onSelect} onReplay={onReplay} />
      ))}
    </div>
  );
}
