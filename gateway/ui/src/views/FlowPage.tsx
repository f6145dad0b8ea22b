import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { parse as parseYaml } from "yaml";
import { Link, useLocation } from "wouter";
import { ApiError, get, request, type Execution, type FlowJson, type Problem, type Revision } from "../api";
import { ErrorNote, Tabs } from "../components/common";
import { InputsForm } from "../components/InputsForm";
import { Topology } from "../components/Topology";
import { formatDate } from "../lib/format";

const YamlEditor = lazy(() => import("../editor/YamlEditor"));
const DiffView = lazy(() => import("../editor/DiffView"));

const NEW_FLOW = `id: my-flow
namespace: company.team
tasks:
  - id: hello
    type: core.Log
    message: Hello from Kestrel
`;

let schemaPromise: Promise<object | null> | null = null;
function loadSchema(): Promise<object | null> {
  schemaPromise ??= get<object>("/flows/schema").catch(() => null);
  return schemaPromise;
}

async function validate(source: string): Promise<Problem[]> {
  return request<Problem[]>("POST", "/flows/validate", source, "application/x-yaml");
}

function Revisions({ flow, onRestore }: { flow: FlowJson; onRestore: (source: string) => Promise<void> }) {
  const [revisions, setRevisions] = useState<Revision[]>([]);
  const [chosen, setChosen] = useState<number | null>(null);
  useEffect(() => {
    get<Revision[]>(`/flows/${flow.namespace}/${flow.id}/revisions`).then((r) => {
      setRevisions(r);
      setChosen(r.length > 1 ? r[r.length - 2].revision : r[0]?.revision ?? null);
    });
  }, [flow]);
  const left = revisions.find((r) => r.revision === chosen);
  return (
    <div className="revisions">
      <div className="toolbar">
        <label>
          compare revision{" "}
          <select aria-label="revision" value={chosen ?? ""} onChange={(e) => setChosen(Number(e.target.value))}>
            {revisions.map((r) => (
              <option key={r.revision} value={r.revision}>
                {r.revision} · {formatDate(r.updated)}
                {r.deleted ? " (deleted)" : ""}
              </option>
            ))}
          </select>
        </label>
        <span className="muted">with the current revision {flow.revision}</span>
        {left && left.revision !== flow.revision && !left.deleted && (
          <button onClick={() => onRestore(left.source)}>Restore revision {left.revision}</button>
        )}
      </div>
      {left && (
        <Suspense fallback={<div className="loading">Loading…</div>}>
          <div className="diff-heads">
            <span>revision {left.revision}</span>
            <span>revision {flow.revision} (current)</span>
          </div>
          <DiffView left={left.source} right={flow.source} />
        </Suspense>
      )}
    </div>
  );
}

export default function FlowPage({ namespace, id }: { namespace: string; id: string }) {
  const isNew = !namespace;
  const [flow, setFlow] = useState<FlowJson | null>(null);
  const [source, setSource] = useState(isNew ? NEW_FLOW : "");
  const [schema, setSchema] = useState<object | null | undefined>(undefined);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [status, setStatus] = useState("");
  const [error, setError] = useState<unknown>();
  const [tab, setTab] = useState("Editor");
  const [, navigate] = useLocation();
  const saved = useRef(source);

  const load = useCallback(async () => {
    if (isNew) return;
    try {
      const f = await get<FlowJson>(`/flows/${namespace}/${id}`);
      setFlow(f);
      setSource(f.source);
      saved.current = f.source;
    } catch (e) {
      setError(e);
    }
  }, [isNew, namespace, id]);

  useEffect(() => {
    void load();
    void loadSchema().then(setSchema);
  }, [load]);

  const save = useCallback(
    async (text: string) => {
      setStatus("saving…");
      try {
        const f = isNew
          ? await request<FlowJson>("POST", "/flows", text, "application/x-yaml")
          : await request<FlowJson>("PUT", `/flows/${namespace}/${id}`, text, "application/x-yaml");
        saved.current = f.source;
        setStatus(`saved revision ${f.revision}`);
        setError(undefined);
        if (isNew) navigate(`/flows/${f.namespace}/${f.id}`);
        else {
          setFlow(f);
          setSource(f.source);
        }
      } catch (e) {
        setStatus("not saved");
        if (e instanceof ApiError && e.errors) setProblems(e.errors as unknown as Problem[]);
        setError(e);
      }
    },
    [isNew, namespace, id, navigate],
  );

  // The topology follows the editor: drawn from its text while it parses, else the saved flow.
  const drawn = useMemo<FlowJson | null>(() => {
    try {
      const parsed: unknown = parseYaml(source);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as FlowJson;
    } catch {
      /* not YAML yet: the saved flow */
    }
    return flow;
  }, [source, flow]);

  if (!isNew && !flow && !error) return <div className="loading">Loading…</div>;
  const tabs = isNew ? ["Editor"] : ["Editor", "Topology", "Revisions", "Run"];
  return (
    <section className="flow-page">
      <header className="page-head">
        <h1>{isNew ? "New flow" : `${namespace}.${id}`}</h1>
        {flow && (
          <div className="meta">
            revision {flow.revision} ·{" "}
            <Link href={`/executions?namespace=${namespace}&flowId=${id}`}>executions</Link>
          </div>
        )}
      </header>
      <Tabs tabs={tabs} value={tab} onChange={setTab} />
      <ErrorNote error={error} />
      {tab === "Editor" && (
        <div className="editor-pane">
          <div className="toolbar">
            <button onClick={() => save(source)}>Save</button>
            <span className="muted">Ctrl/Cmd+S saves a new revision</span>
            <span className="status" data-testid="save-status">{status}</span>
            {source !== saved.current && <span className="muted">unsaved changes</span>}
          </div>
          {schema !== undefined && (
            <Suspense fallback={<div className="loading">Loading editor…</div>}>
              <YamlEditor value={source} schema={schema} validate={validate} onProblems={setProblems} onChange={setSource} onSave={save} />
            </Suspense>
          )}
          <ul className="problems" data-testid="problems">
            {problems.map((p, i) => (
              <li key={i} data-line={p.line} data-column={p.column}>
                line {p.line}, col {p.column}: {p.path}: {p.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      {tab === "Topology" && drawn && <Topology flow={drawn} />}
      {tab === "Revisions" && flow && <Revisions flow={flow} onRestore={async (text) => (await save(text), setTab("Editor"))} />}
      {tab === "Run" && flow && (
        <div className="panel">
          <h3>Run {flow.id}</h3>
          <InputsForm
            specs={flow.inputs ?? []}
            submitLabel="Execute"
            onSubmit={async (values) => {
              const execution = await request<Execution>("POST", `/executions/${namespace}/${id}`, values);
              navigate(`/executions/${execution.id}`);
            }}
          />
        </div>
      )}
    </section>
  );
}
