import { useMemo, useState } from "react";
import { Link } from "wouter";
import { get, query, type FlowSummary, type Page } from "../api";
import { ErrorNote, StateBadge, usePoll } from "../components/common";
import { formatDate } from "../lib/format";

interface NsNode {
  name: string;
  full: string;
  children: NsNode[];
  count: number;
}

/** Namespaces as a tree: "a.b.c" sits under "a.b" under "a". */
export function namespaceTree(namespaces: string[]): NsNode[] {
  const root: NsNode = { name: "", full: "", children: [], count: 0 };
  for (const ns of namespaces) {
    let node = root;
    const parts = ns.split(".");
    parts.forEach((part, i) => {
      const full = parts.slice(0, i + 1).join(".");
      let child = node.children.find((c) => c.full === full);
      if (!child) {
        child = { name: part, full, children: [], count: 0 };
        node.children.push(child);
        node.children.sort((a, b) => a.name.localeCompare(b.name));
      }
      child.count += 1;
      node = child;
    });
  }
  return root.children;
}

function Tree({ nodes, value, onPick }: { nodes: NsNode[]; value: string; onPick: (ns: string) => void }) {
  return (
    <ul className="ns-tree">
      {nodes.map((n) => (
        <li key={n.full}>
          <button className={n.full === value ? "link active" : "link"} onClick={() => onPick(n.full === value ? "" : n.full)}>
            {n.name} <span className="muted">{n.count}</span>
          </button>
          {n.children.length > 0 && <Tree nodes={n.children} value={value} onPick={onPick} />}
        </li>
      ))}
    </ul>
  );
}

export function Flows() {
  const [all, setAll] = useState<FlowSummary[]>([]);
  const [error, setError] = useState<unknown>();
  const [namespace, setNamespace] = useState("");
  const [q, setQ] = useState("");
  usePoll(
    async () => {
      try {
        const page = await get<Page<FlowSummary>>(`/flows/search${query({ size: 1000 })}`);
        setAll(page.results);
        setError(undefined);
      } catch (e) {
        setError(e);
      }
    },
    5000,
    [],
  );
  const tree = useMemo(() => namespaceTree(all.map((f) => f.namespace)), [all]);
  const shown = all.filter(
    (f) =>
      (!namespace || f.namespace === namespace || f.namespace.startsWith(`${namespace}.`)) &&
      (!q || `${f.namespace} ${f.id} ${f.description ?? ""}`.toLowerCase().includes(q.toLowerCase())),
  );
  return (
    <section>
      <h1>Flows</h1>
      <div className="toolbar">
        <input placeholder="search flows" aria-label="search flows" value={q} onChange={(e) => setQ(e.target.value)} />
        <Link href="/flows/new" className="button">
          New flow
        </Link>
      </div>
      <ErrorNote error={error} />
      <div className="with-aside">
        <aside>
          <h3>Namespaces</h3>
          <Tree nodes={tree} value={namespace} onPick={setNamespace} />
        </aside>
        <table className="grid">
          <thead>
            <tr>
              <th>Namespace</th>
              <th>Flow</th>
              <th>Revision</th>
              <th>Triggers</th>
              <th>Last execution</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((f) => (
              <tr key={`${f.namespace}/${f.id}`} data-flow={`${f.namespace}/${f.id}`}>
                <td>{f.namespace}</td>
                <td>
                  <Link href={`/flows/${f.namespace}/${f.id}`}>{f.id}</Link>
                  {f.disabled && <span className="muted"> (disabled)</span>}
                  {f.errors?.length ? <span className="field-error"> invalid</span> : null}
                </td>
                <td>{f.revision}</td>
                <td>{f.triggers.map((t) => `${t.id} (${t.type})`).join(", ")}</td>
                <td>{f.lastExecutionState && <StateBadge state={f.lastExecutionState} />}</td>
                <td>{formatDate(f.updated)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
