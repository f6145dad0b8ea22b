import { useMemo, useRef, useState } from "react";
import type uPlot from "uplot";
import { get, type ExecutionStats, type Latency } from "../api";
import { bars, Chart } from "../components/Chart";
import { ErrorNote, usePoll } from "../components/common";
import { formatSeconds, stateColor } from "../lib/format";

const SHOWN = ["SUCCESS", "WARNING", "FAILED", "KILLED", "RUNNING", "PAUSED", "QUEUED", "CREATED", "CANCELLED"];
const HISTORY = 120;

/** Per-minute counts as aligned series: x = minute (seconds), one series per state. */
export function perMinuteSeries(stats: ExecutionStats, now: number, minutes = 60): { x: number[]; series: Record<string, number[]> } {
  const end = Math.floor(now / 60000) * 60;
  const x = Array.from({ length: minutes }, (_, i) => end - (minutes - 1 - i) * 60);
  const index = new Map(x.map((t, i) => [t, i]));
  const series: Record<string, number[]> = {};
  for (const row of stats.perMinute) {
    const i = index.get(Math.floor(Date.parse(row.minute) / 1000));
    if (i === undefined) continue;
    (series[row.state] ??= new Array(minutes).fill(0))[i] += row.count;
  }
  return { x, series };
}

/** Series cumulated in `states` order: each state's value is its count plus those before it. */
export function stacked(series: Record<string, number[]>, states: string[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  let running: number[] | null = null;
  for (const s of states) {
    const own = series[s] ?? [];
    running = own.map((v, i) => v + (running?.[i] ?? 0));
    out[s] = running;
  }
  return out;
}

/** Draw the tallest stack first, so each smaller one shows on top of it. */
const stackOrder = (states: string[]) => states.slice().reverse();

export function Dashboard() {
  const [stats, setStats] = useState<ExecutionStats>();
  const [error, setError] = useState<unknown>();
  const [latencies, setLatencies] = useState<Latency[]>([]);
  // p50/p99 per trigger as sampled since this page opened (the server keeps a recent window).
  const history = useRef<{ t: number[]; p: Record<string, Array<[number | null, number | null]>> }>({ t: [], p: {} });
  const [version, setVersion] = useState(0);
  usePoll(
    async () => {
      try {
        const [s, l] = await Promise.all([get<ExecutionStats>("/stats/executions?minutes=60"), get<Latency[]>("/triggers/latency")]);
        setStats(s);
        setLatencies(l);
        const h = history.current;
        h.t.push(Date.now() / 1000);
        for (const lat of l.filter((x) => x.count > 0)) (h.p[lat.trigger] ??= new Array(h.t.length - 1).fill([null, null])).push([lat.p50, lat.p99]);
        for (const name of Object.keys(h.p)) if (h.p[name].length < h.t.length) h.p[name].push([null, null]);
        if (h.t.length > HISTORY) {
          h.t.shift();
          for (const name of Object.keys(h.p)) h.p[name].shift();
        }
        setVersion((v) => v + 1);
        // Charted once two samples exist (a line needs two points).
        setError(undefined);
      } catch (e) {
        setError(e);
      }
    },
    2000,
    [],
  );
  const minute = useMemo(() => (stats ? perMinuteSeries(stats, Date.now()) : null), [stats]);
  const states = minute ? SHOWN.filter((s) => minute.series[s]) : [];
  const execOptions = useMemo<uPlot.Options>(
    () => ({
      width: 640,
      height: 220,
      // Stacked: each state's bar is drawn up to the running total, biggest first; the
      // legend shows each state's own count.
      series: [
        {},
        ...stackOrder(states).map((s) => ({
          label: s,
          stroke: stateColor(s),
          fill: `${stateColor(s)}aa`,
          paths: bars,
          points: { show: false },
          value: (_u: uPlot, _v: number | null, _si: number, i: number | null) =>
            i === null || !minute ? "–" : String(minute.series[s]?.[i] ?? 0),
        })),
      ],
      axes: [{}, { label: "executions / min" }],
    }),
    [states.join(",")],
  );
  const execData = useMemo<uPlot.AlignedData>(
    () => (minute ? [minute.x, ...stackOrder(states).map((s) => stacked(minute.series, states)[s])] : [[]]),
    [minute, states.join(",")],
  );
  const names = history.current.t.length > 1 ? Object.keys(history.current.p).sort() : [];
  const latOptions = useMemo<uPlot.Options>(
    () => ({
      width: 640,
      height: 220,
      series: [
        {},
        ...names.flatMap((n, i) => [
          { label: `${n} p50`, stroke: `hsl(${(i * 67) % 360} 60% 45%)`, value: (_u: uPlot, v: number | null) => formatSeconds(v) },
          { label: `${n} p99`, stroke: `hsl(${(i * 67) % 360} 60% 45%)`, dash: [4, 4], value: (_u: uPlot, v: number | null) => formatSeconds(v) },
        ]),
      ],
      axes: [{}, { label: "seconds" }],
    }),
    [names.join(",")],
  );
  const latData = useMemo<uPlot.AlignedData>(() => {
    const h = history.current;
    return [h.t.slice(), ...names.flatMap((n) => [h.p[n].map((x) => x[0]), h.p[n].map((x) => x[1])])];
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [version]);
  return (
    <section>
      <h1>Dashboard</h1>
      <ErrorNote error={error} />
      <div className="cards">
        <div className="card">
          <div className="card-label">Running now</div>
          <div className="card-value" data-testid="running-now">{stats?.running ?? "–"}</div>
        </div>
        <div className="card">
          <div className="card-label">Success rate (60 min)</div>
          <div className="card-value" data-testid="success-rate">
            {stats?.successRate === null || stats?.successRate === undefined ? "–" : `${(stats.successRate * 100).toFixed(1)} %`}
          </div>
        </div>
        <div className="card">
          <div className="card-label">Ended (60 min)</div>
          <div className="card-value">
            {stats ? `${stats.success} ok / ${stats.failed} failed` : "–"}
          </div>
        </div>
      </div>
      <div className="panel">
        <h3>Executions per minute, by state</h3>
        {minute && <Chart key={states.join(",")} options={execOptions} data={execData} label="executions per minute" />}
      </div>
      <div className="panel">
        <h3>Event → first task latency per trigger (p50 solid, p99 dashed)</h3>
        {names.length ? <Chart key={names.join(",")} options={latOptions} data={latData} label="latency per trigger" /> : <p className="muted">No trigger events yet.</p>}
        <table className="grid">
          <tbody>
            {latencies.map((l) => (
              <tr key={l.trigger}>
                <td>{l.trigger}</td>
                <td>p50 {formatSeconds(l.p50)}</td>
                <td>p99 {formatSeconds(l.p99)}</td>
                <td className="muted">{l.count} events</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
