import { useEffect, useState } from "react";
import { useSearch } from "wouter";
import { get, query, request, type FlowSummary, type KVKey, type Page } from "../api";
import { ErrorNote, usePoll } from "../components/common";
import { formatDate } from "../lib/format";

const TYPES = ["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON"];

/** The body and content type to PUT for a value typed in the form. */
export function kvBody(type: string, text: string): { body: string; contentType: string } {
  if (type === "STRING" || type === "DATETIME" || type === "DATE" || type === "DURATION") {
    return { body: JSON.stringify(text), contentType: "application/json" };
  }
  JSON.parse(text); // NUMBER, BOOLEAN, JSON: must be JSON (throws with the reason)
  return { body: text, contentType: "application/json" };
}

function valueText(type: string, value: unknown): string {
  if (typeof value === "string" && type !== "JSON") return value;
  return JSON.stringify(value, null, 2);
}

export function KV() {
  const params = new URLSearchParams(useSearch());
  const [namespaces, setNamespaces] = useState<string[]>([]);
  const [namespace, setNamespace] = useState(params.get("namespace") ?? "");
  const [keys, setKeys] = useState<KVKey[]>([]);
  const [editing, setEditing] = useState<{ key: string; type: string; value: string; ttl: string } | null>(null);
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState("");

  useEffect(() => {
    get<Page<FlowSummary>>(`/flows/search${query({ size: 1000 })}`).then((p) => {
      const all = [...new Set(p.results.map((f) => f.namespace))].sort();
      setNamespaces(all);
      setNamespace((ns) => ns || all[0] || "");
    });
  }, []);
  const load = async () => {
    if (!namespace) return;
    try {
      setKeys(await get<KVKey[]>(`/namespaces/${namespace}/kv`));
      setError(undefined);
    } catch (e) {
      setError(e);
    }
  };
  usePoll(load, 3000, [namespace]);

  const open = async (key: string) => {
    const found = await get<{ type: string; value: unknown }>(`/namespaces/${namespace}/kv/${key}`);
    setEditing({ key, type: found.type, value: valueText(found.type, found.value), ttl: "" });
    setNotice("");
  };
  const save = async () => {
    if (!editing) return;
    try {
      const { body, contentType } = kvBody(editing.type, editing.value);
      await request("PUT", `/namespaces/${namespace}/kv/${editing.key}${query({ type: editing.type, ttl: editing.ttl })}`, body, contentType);
      setNotice(`saved ${editing.key}`);
      setError(undefined);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  const remove = async (key: string) => {
    await request("DELETE", `/namespaces/${namespace}/kv/${key}`);
    if (editing?.key === key) setEditing(null);
    await load();
  };
  return (
    <section>
      <h1>KV store</h1>
      <div className="toolbar">
        <label>
          namespace{" "}
          <input list="kv-namespaces" aria-label="kv namespace" value={namespace} onChange={(e) => setNamespace(e.target.value)} />
          <datalist id="kv-namespaces">
            {namespaces.map((n) => (
              <option key={n} value={n} />
            ))}
          </datalist>
        </label>
        <button onClick={() => setEditing({ key: "", type: "STRING", value: "", ttl: "" })}>New key</button>
      </div>
      <ErrorNote error={error} />
      <div className="with-aside wide">
        <table className="grid">
          <thead>
            <tr>
              <th>Key</th>
              <th>Type</th>
              <th>Expires</th>
              <th>Updated</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.key} data-kv={k.key}>
                <td>
                  <button className="link" onClick={() => open(k.key)}>
                    {k.key}
                  </button>
                </td>
                <td>{k.type}</td>
                <td>{formatDate(k.expirationDate) || "never"}</td>
                <td>{formatDate(k.updateDate)}</td>
                <td>
                  <button className="small" onClick={() => remove(k.key)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {editing && (
          <form
            className="panel kv-editor"
            onSubmit={(e) => {
              e.preventDefault();
              void save();
            }}
          >
            <label>
              key <input aria-label="key" value={editing.key} onChange={(e) => setEditing({ ...editing, key: e.target.value })} />
            </label>
            <label>
              type{" "}
              <select aria-label="type" value={editing.type} onChange={(e) => setEditing({ ...editing, type: e.target.value })}>
                {TYPES.map((t) => (
                  <option key={t}>{t}</option>
                ))}
              </select>
            </label>
            <label>
              value <textarea aria-label="value" rows={6} value={editing.value} onChange={(e) => setEditing({ ...editing, value: e.target.value })} />
            </label>
            <label>
              TTL <input aria-label="ttl" placeholder="e.g. PT1H (empty: never expires)" value={editing.ttl} onChange={(e) => setEditing({ ...editing, ttl: e.target.value })} />
            </label>
            <button type="submit">Save</button>
            {notice && <span className="notice">{notice}</span>}
          </form>
        )}
      </div>
    </section>
  );
}
