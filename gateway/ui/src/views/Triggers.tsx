import { useMemo, useState } from "react";
import { Link } from "wouter";
import type uPlot from "uplot";
import { get, query, request, type Latency, type Page, type Trigger } from "../api";
import { bars, Chart } from "../components/Chart";
import { ErrorNote, usePoll } from "../components/common";
import { formatDate, formatSeconds } from "../lib/format";

export const triggerName = (t: Trigger) => `${t.namespace}.${t.flowId}/${t.triggerId}`;

function Histogram({ latency }: { latency: Latency }) {
  const options = useMemo<uPlot.Options>(
    () => ({
      width: 320,
      height: 120,
      legend: { show: false },
      scales: { x: { time: false } },
      axes: [
        { values: (_u, ticks) => ticks.map((t) => (t < latency.buckets.length ? `≤${latency.buckets[t] * 1000}ms` : "more")), size: 30, font: "10px sans-serif" },
        { size: 30, font: "10px sans-serif" },
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
  const [error, setError] = useState<unknown>();
  const load = async () => {
    try {
      const [page, lat] = await Promise.all([
        get<Page<Trigger>>("/triggers"),
        get<Latency[]>(`/triggers/latency${query({ kind: "first_task" })}`),
      ]);
      setTriggers(page.results);
      setLatency(Object.fromEntries(lat.map((l) => [l.trigger, l])));
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
            const disabled = t.disabled ?? t.status === "STOPPED";
            return (
              <tr key={name} data-trigger={name}>
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
                      <div>
                        p50 {formatSeconds(l.p50)} · p99 {formatSeconds(l.p99)} <span className="muted">({l.count})</span>
                      </div>
                      <Histogram latency={l} />
                    </>
                  ) : (
                    <span className="muted">no events yet</span>
                  )}
                </td>
                <td>
                  <button onClick={() => toggle(t, !disabled)}>{disabled ? "Enable" : "Disable"}</button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
