import { useEffect, useRef, useState } from "react";
import { stateColor } from "../lib/format";

export function StateBadge({ state }: { state: string }) {
  return (
    <span className="badge" data-state={state} style={{ background: stateColor(state) }}>
      {state}
    </span>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return <div className="error-note" role="alert">{error instanceof Error ? error.message : String(error)}</div>;
}

/** A collapsible JSON tree. */
export function JsonView({ value, name, open = true }: { value: unknown; name?: string; open?: boolean }) {
  if (value === null || typeof value !== "object") {
    return (
      <div className="json-leaf">
        {name !== undefined && <span className="json-key">{name}: </span>}
        <span className={`json-${value === null ? "null" : typeof value}`}>{JSON.stringify(value)}</span>
      </div>
    );
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  const brackets = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return (
    <details className="json-node" open={open}>
      <summary>
        {name !== undefined && <span className="json-key">{name}: </span>}
        {brackets[0]}
        <span className="json-count">{entries.length}</span>
        {brackets[1]}
      </summary>
      <div className="json-children">
        {entries.map(([k, v]) => (
          <JsonView key={k} name={k} value={v} open={false} />
        ))}
      </div>
    </details>
  );
}

/** Call `fn` now and every `ms` while mounted (and when `deps` change). */
export function usePoll(fn: () => void | Promise<void>, ms: number, deps: unknown[]): void {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout>;
    const tick = async () => {
      try {
        await saved.current();
      } finally {
        if (alive) timer = setTimeout(tick, ms);
      }
    };
    void tick();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}

export function Tabs({ tabs, value, onChange }: { tabs: string[]; value: string; onChange: (t: string) => void }) {
  return (
    <div className="tabs" role="tablist">
      {tabs.map((t) => (
        <button key={t} role="tab" aria-selected={t === value} className={t === value ? "active" : ""} onClick={() => onChange(t)}>
          {t}
        </button>
      ))}
    </div>
  );
}

export function useAsync<T>(fn: () => Promise<T>, deps: unknown[]): { data: T | undefined; error: unknown; reload: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let alive = true;
    fn().then(
      (d) => alive && (setData(d), setError(undefined)),
      (e) => alive && setError(e),
    );
    return () => {
      alive = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}
