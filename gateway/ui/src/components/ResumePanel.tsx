import { useEffect, useState } from "react";
import { get, query, request, type Execution, type FlowJson, type InputSpec } from "../api";
import { ErrorNote } from "./common";
import { InputsForm } from "./InputsForm";

function findTask(tasks: unknown, id: string): Record<string, unknown> | null {
  if (!Array.isArray(tasks)) return null;
  for (const t of tasks as Array<Record<string, unknown>>) {
    if (t.id === id) return t;
    for (const key of ["tasks", "then", "else", "errors", "finally"]) {
      const found = findTask(t[key], id);
      if (found) return found;
    }
  }
  return null;
}

/** Resume a paused execution, with the form of its Pause task's `onResume` inputs. */
export function ResumePanel({ execution, onDone }: { execution: Execution; onDone: () => void }) {
  const [specs, setSpecs] = useState<InputSpec[] | null>(null);
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    const paused = execution.taskRunList?.find((r) => r.state.current === "PAUSED");
    get<FlowJson>(`/flows/${execution.namespace}/${execution.flowId}${query({ revision: execution.flowRevision })}`)
      .then((flow) => {
        const task = paused ? findTask(flow.tasks, paused.taskId) : null;
        setSpecs(((task?.onResume as InputSpec[] | undefined) ?? []) as InputSpec[]);
      })
      .catch(() => setSpecs([]));
  }, [execution]);
  if (specs === null) return null;
  return (
    <div className="panel resume-panel">
      <h3>Resume</h3>
      <InputsForm
        specs={specs}
        submitLabel="Resume"
        onSubmit={async (values) => {
          try {
            await request("POST", `/executions/${execution.id}/resume`, values);
            onDone();
            return null;
          } catch (e) {
            setError(e);
            throw e;
          }
        }}
      />
      <ErrorNote error={error} />
    </div>
  );
}
