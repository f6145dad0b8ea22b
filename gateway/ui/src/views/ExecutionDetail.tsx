import { useEffect, useMemo, useState } from "react";
import { Link, useLocation } from "wouter";
import { follow, get, query, request, type Execution, type LogLine } from "../api";
import { ErrorNote, JsonView, StateBadge, Tabs } from "../components/common";
import { Gantt } from "../components/Gantt";
import { ResumePanel } from "../components/ResumePanel";
import { TaskRunPanel } from "../components/TaskRunPanel";
import { formatDate, TERMINAL } from "../lib/format";

const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/** The execution, live: follows the SSE stream until the execution ends. */
function useExecution(id: string) {
  const [execution, setExecution] = useState<Execution>();
  const [error, setError] = useState<unknown>();
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    (async () => {
      try {
        setExecution(await get<Execution>(`/executions/${id}`));
        await follow(`/executions/${id}/follow`, (m) => setExecution(JSON.parse(m.data) as Execution), abort.signal);
      } catch (e) {
        if (!abort.signal.aborted) setError(e);
      }
    })();
    return () => abort.abort();
  }, [id, generation]);
  return { execution, error, refollow: () => setGeneration((g) => g + 1) };
}

function useLogs(id: string, level: string, generation: number) {
  const [lines, setLines] = useState<LogLine[]>([]);
  useEffect(() => {
    setLines([]);
    const abort = new AbortController();
    let buffer: LogLine[] = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      const batch = buffer;
      buffer = [];
      setLines((old) => old.concat(batch));
    };
    follow(
      `/logs/${id}/follow${query({ minLevel: level || undefined })}`,
      (m) => {
        buffer.push(JSON.parse(m.data) as LogLine);
        if (!frame) frame = requestAnimationFrame(flush);
      },
      abort.signal,
    ).catch(() => undefined);
    return () => {
      abort.abort();
      cancelAnimationFrame(frame);
    };
  }, [id, level, generation]);
  return lines;
}

function useNow(live: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, [live]);
  return now;
}

export function ExecutionDetail({ id }: { id: string }) {
  const { execution, error, refollow } = useExecution(id);
  const [tab, setTab] = useState("Gantt");
  const [level, setLevel] = useState("");
  const [taskFilter, setTaskFilter] = useState<string | null>(null);
  const [actionError, setActionError] = useState<unknown>();
  const [, navigate] = useLocation();
  const live = !!execution && !TERMINAL.has(execution.state.current);
  const now = useNow(live);
  const [logGeneration, setLogGeneration] = useState(0);
  const logs = useLogs(id, level, logGeneration);
  const shownLogs = useMemo(() => (taskFilter ? logs.filter((l) => l.taskRunId === taskFilter) : logs), [logs, taskFilter]);
  const taskNames = useMemo(() => new Map(execution?.taskRunList?.map((r) => [r.id, r.taskId]) ?? []), [execution]);

  if (error) return <ErrorNote error={error} />;
  if (!execution) return <div className="loading">Loading…</div>;

  const act = async (fn: () => Promise<unknown>) => {
    try {
      setActionError(undefined);
      await fn();
    } catch (e) {
      setActionError(e);
    }
  };
  const restarted = () => {
    refollow();
    setLogGeneration((g) => g + 1);
  };
  const replay = (taskRunId?: string) =>
    act(async () => {
      const created = await request<Execution>("POST", `/executions/${id}/replay${query({ taskRunId })}`);
      navigate(`/executions/${created.id}`);
    });
  const state = execution.state.current;
  const selectedRun = execution.taskRunList?.find((r) => r.id === taskFilter) ?? null;
  const subflows = (execution.taskRunList ?? []).filter((r) => typeof r.outputs?.executionId === "string");
  return (
    <section className="execution">
      <header className="page-head">
        <h1>
          Execution <code>{execution.id}</code> <StateBadge state={state} />
        </h1>
        <div className="meta">
          <Link href={`/flows/${execution.namespace}/${execution.flowId}`}>
            {execution.namespace}.{execution.flowId}
          </Link>{" "}
          rev {execution.flowRevision} · started {formatDate(execution.state.startDate)}
          {execution.state.duration && ` · ${execution.state.duration}`}
          {execution.originalId && (
            <>
              {" "}· replay of <Link href={`/executions/${execution.originalId}`}>{execution.originalId}</Link>
            </>
          )}
          {execution.parentId && (
            <>
              {" "}· subflow of <Link href={`/executions/${execution.parentId}`}>{execution.parentId}</Link>
            </>
          )}
        </div>
        {(execution.labels.length > 0 || subflows.length > 0) && (
          <div className="meta">
            {execution.labels.map((l) => (
              <span key={l.key} className="chip">
                {l.key}: {l.value}
              </span>
            ))}
            {subflows.map((r) => (
              <span key={r.id} className="chip">
                subflow {r.taskId}: <Link href={`/executions/${String(r.outputs?.executionId)}`}>{String(r.outputs?.executionId)}</Link>
              </span>
            ))}
          </div>
        )}
        <div className="toolbar">
          {!TERMINAL.has(state) && <button onClick={() => act(() => request("DELETE", `/executions/${id}/kill`))}>Kill</button>}
          {state === "RUNNING" && <button onClick={() => act(() => request("POST", `/executions/${id}/pause`))}>Pause</button>}
          {TERMINAL.has(state) && <button onClick={() => act(async () => (await request("POST", `/executions/${id}/restart`), restarted()))}>Restart</button>}
          <button onClick={() => replay()}>Replay</button>
          <Link href={`/executions${query({ namespace: execution.namespace, flowId: execution.flowId })}`}>Other executions</Link>
        </div>
        <ErrorNote error={actionError} />
      </header>
      {state === "PAUSED" && <ResumePanel execution={execution} onDone={refollow} />}
      <Tabs tabs={["Gantt", "Logs", "Inputs & outputs", "Trigger", "History"]} value={tab} onChange={setTab} />
      {tab === "Gantt" && (
        <>
          <Gantt
            runs={execution.taskRunList ?? []}
            now={live ? now : Date.now()}
            selected={taskFilter}
            onSelect={setTaskFilter}
            onReplay={TERMINAL.has(state) ? (runId) => replay(runId) : undefined}
          />
          {selectedRun && <TaskRunPanel run={selectedRun} onLogs={() => setTab("Logs")} />}
        </>
      )}
      {tab === "Logs" && (
        <div className="logs-view">
          <div className="toolbar">
            <label>
              level{" "}
              <select aria-label="log level" value={level} onChange={(e) => setLevel(e.target.value)}>
                <option value="">all</option>
                {LEVELS.map((l) => (
                  <option key={l}>{l}</option>
                ))}
              </select>
            </label>
            {taskFilter && (
              <button onClick={() => setTaskFilter(null)}>
                task {taskNames.get(taskFilter)} ✕
              </button>
            )}
            <span className="muted">{shownLogs.length} line(s)</span>
          </div>
          <div className="logs" role="log">
            {shownLogs.map((l) => (
              <div key={l.seq} className={`log-line level-${l.level}`}>
                <span className="log-time">{new Date(l.timestamp).toLocaleTimeString()}</span>
                <span className="log-level">{l.level}</span>
                <span className="log-task">{l.taskRunId ? taskNames.get(l.taskRunId) ?? "" : ""}</span>
                <span className="log-message">{l.message}</span>
              </div>
            ))}
          </div>
        </div>
      )}
      {tab === "Inputs & outputs" && (
        <div className="two-col">
          <div className="panel">
            <h3>Inputs</h3>
            <JsonView value={execution.inputs} />
          </div>
          <div className="panel">
            <h3>Outputs</h3>
            <JsonView value={execution.outputs ?? {}} />
            {execution.taskRunList
              ?.filter((r) => r.outputs && Object.keys(r.outputs).length)
              .map((r) => <JsonView key={r.id} name={r.taskId} value={r.outputs} open={false} />)}
          </div>
        </div>
      )}
      {tab === "Trigger" && (
        <div className="panel">
          <h3>Trigger {execution.trigger?.id ?? "(none)"}</h3>
          <JsonView value={execution.trigger?.variables ?? {}} />
        </div>
      )}
      {tab === "History" && (
        <table className="grid">
          <thead>
            <tr>
              <th>State</th>
              <th>Date</th>
            </tr>
          </thead>
          <tbody>
            {execution.state.histories.map((h, i) => (
              <tr key={i}>
                <td>
                  <StateBadge state={h.state} />
                </td>
                <td>{formatDate(h.date)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
