import { useState } from "react";
import { ApiError, type InputSpec } from "../api";
import { formValues, initialValue, widgetFor } from "../lib/inputs";

type Raw = Record<string, string | boolean | string[]>;

/** A form with one widget per input; errors are shown at their field (also the server's). */
export function InputsForm({
  specs,
  submitLabel,
  onSubmit,
}: {
  specs: InputSpec[];
  submitLabel: string;
  onSubmit: (values: Record<string, unknown>) => Promise<unknown>;
}) {
  const [raw, setRaw] = useState<Raw>(() => Object.fromEntries(specs.map((s) => [s.id, initialValue(s)])));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const set = (id: string, value: string | boolean | string[]) => setRaw((r) => ({ ...r, [id]: value }));
  return (
    <form
      className="inputs-form"
      onSubmit={async (e) => {
        e.preventDefault();
        const { values, errors: local } = formValues(specs, raw);
        setErrors(local);
        if (Object.keys(local).length) return;
        setBusy(true);
        try {
          await onSubmit(values);
        } catch (error) {
          if (error instanceof ApiError && error.errors) {
            setErrors(Object.fromEntries(error.errors.map((x) => [String(x.field), String(x.message)])));
          }
        } finally {
          setBusy(false);
        }
      }}
    >
      {specs.map((spec) => {
        const widget = widgetFor(spec);
        const value = raw[spec.id];
        const common = { id: `input-${spec.id}`, name: spec.id, "aria-label": spec.id };
        let field;
        if (widget === "checkbox") field = <input type="checkbox" {...common} checked={value === true} onChange={(e) => set(spec.id, e.target.checked)} />;
        else if (widget === "select")
          field = (
            <select {...common} value={String(value)} onChange={(e) => set(spec.id, e.target.value)}>
              <option value=""></option>
              {(spec.values ?? []).map((v) => (
                <option key={String(v)}>{String(v)}</option>
              ))}
            </select>
          );
        else if (widget === "multiselect")
          field = (
            <select {...common} multiple value={value as string[]} onChange={(e) => set(spec.id, Array.from(e.target.selectedOptions, (o) => o.value))}>
              {(spec.values ?? []).map((v) => (
                <option key={String(v)}>{String(v)}</option>
              ))}
            </select>
          );
        else if (widget === "textarea") field = <textarea {...common} rows={4} value={String(value)} onChange={(e) => set(spec.id, e.target.value)} />;
        else if (widget === "file")
          field = (
            <input
              type="file"
              {...common}
              onChange={async (e) => {
                const file = e.target.files?.[0];
                if (!file) return;
                const reader = new FileReader();
                reader.onload = () => set(spec.id, String(reader.result));
                reader.readAsDataURL(file);
              }}
            />
          );
        else
          field = (
            <input
              type={widget === "number" ? "text" : widget}
              inputMode={widget === "number" ? "decimal" : undefined}
              step={widget === "datetime-local" ? 1 : undefined}
              {...common}
              value={String(value)}
              onChange={(e) => set(spec.id, e.target.value)}
            />
          );
        return (
          <div className={`field${errors[spec.id] ? " invalid" : ""}`} key={spec.id} data-field={spec.id}>
            <label htmlFor={`input-${spec.id}`}>
              {spec.id} <span className="muted">{spec.type}{spec.required === false ? "" : " *"}</span>
            </label>
            {field}
            {spec.description && <small className="muted">{spec.description}</small>}
            {errors[spec.id] && <div className="field-error">{errors[spec.id]}</div>}
          </div>
        );
      })}
      <button type="submit" disabled={busy}>
        {submitLabel}
      </button>
    </form>
  );
}
