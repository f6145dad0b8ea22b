import { useState } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { get, query, request, type Execution, type Page } from "../api";
import { ErrorNote, StateBadge, usePoll } from "../components/common";
import { formatDate } from "../lib/format";

const STATES = ["CREATED", "QUEUED", "RUNNING", "PAUSED", "RETRYING", "KILLING", "SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"];
const SIZE = 25;

/** The filters live in the URL, so a filtered page is a deep link. */
function useFilters() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const params = new URLSearchParams(search);
  const set = (changes: Record<string, string | undefined>) => {
    const next = new URLSearchParams(search);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!("page" in changes)) next.delete("page");
    navigate(`/executions?${next.toString()}`, { replace: true });
  };
  return { params, set };
}

export function Executions() {
  const { params, set } = useFilters();
  const page = Number(params.get("page") ?? "1");
  const [data, setData] = useState<Page<Execution>>();
  const [error, setError] = useState<unknown>();
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [notice, setNotice] = useState("");
  const key = params.toString();

  const load = async () => {
    try {
      const labels = (params.get("labels") ?? "").split(/[,\s]+/).filter(Boolean);
      const trigger = params.get("trigger");
      if (trigger) labels.push(`kestrel.trigger:${trigger}`);
      const toIso = (v: string | null) => (v ? new Date(v).toISOString() : undefined);
      setData(
        await get<Page<Execution>>(
          `/executions/search${query({
            namespace: params.get("namespace"),
            flowId: params.get("flowId"),
            state: params.getAll("state").length ? params.getAll("state") : params.get("states")?.split(",").filter(Boolean),
            labels,
            startDate: toIso(params.get("from")),
            endDate: toIso(params.get("to")),
            page,
            size: SIZE,
          })}`,
        ),
      );
      setError(undefined);
    } catch (e) {
      setError(e);
    }
  };
  usePoll(load, 1000, [key]);

  const bulk = async (action: "kill" | "restart" | "replay") => {
    const ids = [...selected];
    const results = await Promise.allSettled(
      ids.map((id) =>
        action === "kill" ? request("DELETE", `/executions/${id}/kill`) : request("POST", `/executions/${id}/${action}`),
      ),
    );
    const failed = results.filter((r) => r.status === "rejected").length;
    setNotice(`${action}: ${ids.length - failed} done${failed ? `, ${failed} refused` : ""}`);
    setSelected(new Set());
    void load();
  };

  const pages = data ? Math.max(1, Math.ceil(data.total / SIZE)) : 1;
  const states = new Set(params.get("states")?.split(",").filter(Boolean) ?? []);
  return (
    <section>
      <h1>Executions</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <input placeholder="namespace" aria-label="namespace" defaultValue={params.get("namespace") ?? ""} onChange={(e) => set({ namespace: e.target.value })} />
        <input placeholder="flow id" aria-label="flow id" defaultValue={params.get("flowId") ?? ""} onChange={(e) => set({ flowId: e.target.value })} />
        <input placeholder="labels key:value" aria-label="labels" defaultValue={params.get("labels") ?? ""} onChange={(e) => set({ labels: e.target.value })} />
        <input placeholder="trigger id" aria-label="trigger" defaultValue={params.get("trigger") ?? ""} onChange={(e) => set({ trigger: e.target.value })} />
        <label>
          from <input type="datetime-local" aria-label="from" defaultValue={params.get("from") ?? ""} onChange={(e) => set({ from: e.target.value })} />
        </label>
        <label>
          to <input type="datetime-local" aria-label="to" defaultValue={params.get("to") ?? ""} onChange={(e) => set({ to: e.target.value })} />
        </label>
        <div className="state-filter">
          {STATES.map((s) => (
            <label key={s} className="chip">
              <input
                type="checkbox"
                checked={states.has(s)}
                onChange={(e) => {
                  const next = new Set(states);
                  if (e.target.checked) next.add(s);
                  else next.delete(s);
                  set({ states: [...next].join(",") });
                }}
              />
              {s}
            </label>
          ))}
        </div>
      </form>
      <div className="toolbar">
        <span>{data ? `${data.total} execution(s)` : "…"}</span>
        <button disabled={!selected.size} onClick={() => bulk("kill")}>Kill</button>
        <button disabled={!selected.size} onClick={() => bulk("restart")}>Restart</button>
        <button disabled={!selected.size} onClick={() => bulk("replay")}>Replay</button>
        {notice && <span className="notice">{notice}</span>}
      </div>
      <ErrorNote error={error} />
      <table className="grid">
        <thead>
          <tr>
            <th>
              <input
                type="checkbox"
                aria-label="select all"
                checked={!!data?.results.length && data.results.every((e) => selected.has(e.id))}
                onChange={(e) => setSelected(e.target.checked ? new Set(data?.results.map((x) => x.id)) : new Set())}
              />
            </th>
            <th>Id</th>
            <th>Namespace</th>
            <th>Flow</th>
            <th>State</th>
            <th>Started</th>
            <th>Duration</th>
            <th>Trigger</th>
            <th>Labels</th>
          </tr>
        </thead>
        <tbody>
          {data?.results.map((e) => (
            <tr key={e.id} data-execution={e.id}>
              <td>
                <input
                  type="checkbox"
                  aria-label={`select ${e.id}`}
                  checked={selected.has(e.id)}
                  onChange={(ev) => {
                    const next = new Set(selected);
                    if (ev.target.checked) next.add(e.id);
                    else next.delete(e.id);
                    setSelected(next);
                  }}
                />
              </td>
              <td>
                <Link href={`/executions/${e.id}`}>{e.id}</Link>
              </td>
              <td>{e.namespace}</td>
              <td>
                <Link href={`/flows/${e.namespace}/${e.flowId}`}>{e.flowId}</Link>
              </td>
              <td>
                <StateBadge state={e.state.current} />
              </td>
              <td>{formatDate(e.state.startDate)}</td>
              <td>{e.state.duration ?? ""}</td>
              <td>{e.trigger?.id ?? ""}</td>
              <td>
                {e.labels
                  .filter((l) => !l.key.startsWith("kestrel."))
                  .map((l) => (
                    <span key={l.key} className="chip">
                      {l.key}:{l.value}
                    </span>
                  ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="pager">
        <button disabled={page <= 1} onClick={() => set({ page: String(page - 1) })}>‹ Prev</button>
        <span>
          page {page} / {pages}
        </span>
        <button disabled={page >= pages} onClick={() => set({ page: String(page + 1) })}>Next ›</button>
      </div>
    </section>
  );
}
