import { Fragment, useState } from "react";
import { Link, useSearch } from "wouter";
import { get, query, request, type DeadLetter, type Execution, type Page } from "../api";
import { ErrorNote, JsonView, usePoll } from "../components/common";
import { formatDate, hexDump, prettyJson } from "../lib/format";

function Payload({ letter }: { letter: DeadLetter }) {
  const [mode, setMode] = useState<"text" | "json" | "hex">(prettyJson(letter.payloadPreview) ? "json" : "text");
  return (
    <div className="payload">
      <div className="toolbar">
        {(["text", "json", "hex"] as const).map((m) => (
          <label key={m}>
            <input type="radio" checked={mode === m} onChange={() => setMode(m)} /> {m}
          </label>
        ))}
      </div>
      <pre data-testid="payload">
        {mode === "hex" ? hexDump(letter.payload) : mode === "json" ? prettyJson(letter.payloadPreview) ?? "(not JSON)" : letter.payloadPreview}
      </pre>
    </div>
  );
}

export function DeadLetters() {
  const params = new URLSearchParams(useSearch());
  const [namespace, setNamespace] = useState(params.get("namespace") ?? "");
  const [flowId, setFlowId] = useState(params.get("flowId") ?? "");
  const [source, setSource] = useState(params.get("source") ?? "");
  const [letters, setLetters] = useState<DeadLetter[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<unknown>();
  const load = async () => {
    try {
      const page = await get<Page<DeadLetter>>(`/deadletters${query({ namespace, flowId, source })}`);
      setLetters(page.results);
    } catch (e) {
      setError(e);
    }
  };
  usePoll(load, 2000, [namespace, flowId, source]);
  const redrive = async (letter: DeadLetter) => {
    try {
      setError(undefined);
      await request<Execution>("POST", `/deadletters/${letter.id}/redrive`);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  const remove = async (letter: DeadLetter) => {
    try {
      await request("DELETE", `/deadletters/${letter.id}`);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section>
      <h1>Dead letters</h1>
      <div className="filters">
        <input placeholder="namespace" aria-label="namespace" value={namespace} onChange={(e) => setNamespace(e.target.value)} />
        <input placeholder="flow id" aria-label="flow id" value={flowId} onChange={(e) => setFlowId(e.target.value)} />
        <input placeholder="source (exact)" aria-label="source" value={source} onChange={(e) => setSource(e.target.value)} />
      </div>
      <ErrorNote error={error} />
      <table className="grid">
        <thead>
          <tr>
            <th>When</th>
            <th>Flow / trigger</th>
            <th>Source</th>
            <th>Reason</th>
            <th>Attempts</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {letters.map((l) => (
            <Fragment key={l.id}>
              <tr data-dead-letter={l.id}>
                <td>{formatDate(l.createdDate)}</td>
                <td>
                  {l.namespace}.{l.flowId}/{l.triggerId}
                </td>
                <td>{l.source}</td>
                <td className="reason">{l.reason}</td>
                <td>{l.attempts}</td>
                <td className="actions">
                  <button onClick={() => setOpen(open === l.id ? null : l.id)}>Payload</button>
                  <button onClick={() => redrive(l)}>Re-drive</button>
                  <button onClick={() => remove(l)}>Delete</button>
                  {l.redrivenExecutionId && (
                    <Link href={`/executions/${l.redrivenExecutionId}`} data-testid="redriven">
                      re-driven: execution {l.redrivenExecutionId}
                    </Link>
                  )}
                </td>
              </tr>
              {open === l.id && (
                <tr>
                  <td colSpan={6}>
                    <div className="two-col">
                      <Payload letter={l} />
                      <div>
                        <h4>Metadata</h4>
                        <JsonView value={l.metadata} />
                      </div>
                    </div>
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>
      {!letters.length && <p className="muted">No dead letters.</p>}
    </section>
  );
}
