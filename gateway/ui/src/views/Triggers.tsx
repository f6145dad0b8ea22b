import { Fragment, useMemo, useState } from "react";
import { Link } from "wouter";
import type uPlot from "uplot";
import { get, query, request, type Latency, type Page, type Trigger } from "../api";
import { bars, Chart } from "../components/Chart";
import { ErrorNote, usePoll } from "../components/common";
import { formatDate, formatSeconds } from "../lib/format";

export const triggerName = (t: Trigger) => `${t.namespace}.${t.flowId}/${t.triggerId}`;

/** The label of histogram bucket `index`: its upper bound in ms, or "more" past the last. */
export function bucketLabel(bounds: number[], index: number): string {
  if (index >= bounds.length) return "more";
  const ms = bounds[index] * 1000;
  return ms >= 1000 ? `≤${ms / 1000}s` : `≤${ms}ms`;
}

function Histogram({ latency }: { latency: Latency }) {
  const options = useMemo<uPlot.Options>(
    () => ({
      width: 640,
      height: 110,
      legend: { show: false },
      scales: { x: { time: false } },
      axes: [
        {
          // one tick per bucket, labelled: "≤1ms", "≤10ms", ...
          splits: () => latency.counts.map((_, i) => i).filter((i) => i % 1 === 0),
          values: (_u, ticks) => ticks.map((t) => bucketLabel(latency.buckets, t)),
          size: 24,
          font: "10px sans-serif",
        },
        { size: 28, font: "10px sans-serif" },
      ],
      series: [{}, { label: "events", fill: "#2f80ed88", stroke: "#2f80ed", paths: bars, points: { show: false } }],
    }),
    [latency.buckets],
  );
  const data = useMemo<uPlot.AlignedData>(() => [latency.counts.map((_, i) => i), latency.counts], [latency.counts]);
  return <Chart options={options} data={data} label={`latency histogram ${latency.trigger}`} />;
}

export function Triggers() {
  const [triggers, setTriggers] = useState<Trigger[]>([]);
  const [latency, setLatency] = useState<Record<string, Latency>>({});
  const [created, setCreated] = useState<Record<string, Latency>>({});
  const [error, setError] = useState<unknown>();
  const load = async () => {
    try {
      const [page, lat, made] = await Promise.all([
        get<Page<Trigger>>("/triggers"),
        get<Latency[]>(`/triggers/latency${query({ kind: "first_task" })}`),
        get<Latency[]>(`/triggers/latency${query({ kind: "created" })}`),
      ]);
      setTriggers(page.results);
      setLatency(Object.fromEntries(lat.map((l) => [l.trigger, l])));
      setCreated(Object.fromEntries(made.map((l) => [l.trigger, l])));
      setError(undefined);
    } catch (e) {
      setError(e);
    }
  };
  usePoll(load, 2000, []);
  const toggle = async (t: Trigger, disabled: boolean) => {
    try {
      await request("PUT", `/triggers/${t.namespace}/${t.flowId}/${t.triggerId}`, { disabled });
      await load();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section>
      <h1>Triggers</h1>
      <ErrorNote error={error} />
      <div className="scroll-x">
      <table className="grid triggers">
        <thead>
          <tr>
            <th>Trigger</th>
            <th>Type</th>
            <th>Status</th>
            <th>Events</th>
            <th>Executions</th>
            <th>Duplicates</th>
            <th>Dead letters</th>
            <th>Reconnects</th>
            <th>Last event / error</th>
            <th>Event → first task</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {triggers.map((t) => {
            const name = triggerName(t);
            const l = latency[name];
            const c = created[name];
            const disabled = t.disabled ?? t.status === "STOPPED";
            return (
              <Fragment key={name}>
              <tr data-trigger={name}>
                <td>
                  <Link href={`/flows/${t.namespace}/${t.flowId}`}>
                    {t.namespace}.{t.flowId}
                  </Link>
                  /{t.triggerId}
                </td>
                <td>{t.type}</td>
                <td>
                  <span className={`status status-${t.status}`} data-testid="trigger-status">{t.status}</span>
                </td>
                <td>{t.events}</td>
                <td>{t.executionsCreated}</td>
                <td>{t.duplicates}</td>
                <td>{t.deadLetters ? <Link href={`/deadletters?namespace=${t.namespace}&flowId=${t.flowId}`}>{t.deadLetters}</Link> : 0}</td>
                <td>{t.reconnects}</td>
                <td>
                  {formatDate(t.lastEventDate)}
                  {t.lastError && <div className="field-error">{t.lastError}</div>}
                </td>
                <td>
                  {l && l.count > 0 ? (
                    <>
                      <div data-testid="first-task-latency">
                        p50 {formatSeconds(l.p50)} · p99 {formatSeconds(l.p99)} <span className="muted">({l.count})</span>
                      </div>
                    </>
                  ) : (
                    <span className="muted">no runnable task started yet</span>
                  )}
                  {c && c.count > 0 && (
                    <div className="muted" data-testid="created-latency">
                      → execution created: p50 {formatSeconds(c.p50)} · p99 {formatSeconds(c.p99)}
                    </div>
                  )}
                </td>
                <td>
                  <button onClick={() => toggle(t, !disabled)}>{disabled ? "Enable" : "Disable"}</button>
                </td>
              </tr>
              {l && l.count > 0 && (
                <tr data-trigger-latency={name} className="latency-row">
                  <td colSpan={11}>
                    <span className="muted">event → first task, recent events (count per bucket)</span>
                    <Histogram latency={l} />
                  </td>
                </tr>
              )}
              </Fragment>
            );
          })}
        </tbody>
      </table>
      </div>
    </section>
  );
}
