import type { TaskRun } from "../api";
import { formatDate } from "../lib/format";
import { JsonView, StateBadge } from "./common";

/** One task run: its attempts (state, worker, error) and outputs. */
export function TaskRunPanel({ run, onLogs }: { run: TaskRun; onLogs: () => void }) {
  return (
    <div className="panel task-run" data-testid="task-run">
      <h3>
        Task run {run.taskId}
        {run.value ? ` [${run.value}]` : ""} <StateBadge state={run.state.current} />{" "}
        <button className="small" onClick={onLogs}>
          Logs of this task
        </button>
      </h3>
      <table className="grid">
        <thead>
          <tr>
            <th>Attempt</th>
            <th>State</th>
            <th>Started</th>
            <th>Duration</th>
            <th>Worker</th>
            <th>Error</th>
          </tr>
        </thead>
        <tbody>
          {run.attempts.map((a) => (
            <tr key={a.number}>
              <td>{a.number}</td>
              <td>
                <StateBadge state={a.state.current} />
              </td>
              <td>{formatDate(a.state.startDate)}</td>
              <td>{a.state.duration ?? ""}</td>
              <td>{a.worker ?? ""}</td>
              <td>{a.error ? <JsonView value={a.error} open={false} /> : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h4>Outputs</h4>
      <JsonView value={run.outputs ?? {}} />
    </div>
  );
}
