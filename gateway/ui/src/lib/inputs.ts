/** A run form generated from a flow's inputs: a widget per type and value conversion. */
import type { InputSpec } from "../api";

export type Widget =
  | "text"
  | "number"
  | "checkbox"
  | "datetime-local"
  | "date"
  | "time"
  | "select"
  | "multiselect"
  | "textarea"
  | "password"
  | "file";

export function widgetFor(spec: InputSpec): Widget {
  switch (spec.type) {
    case "INT":
    case "FLOAT":
      return "number";
    case "BOOLEAN":
      return "checkbox";
    case "DATETIME":
      return "datetime-local";
    case "DATE":
      return "date";
    case "TIME":
      return "time";
    case "ENUM":
    case "SELECT":
      return "select";
    case "MULTISELECT":
      return "multiselect";
    case "JSON":
    case "ARRAY":
      return "textarea";
    case "SECRET":
      return "password";
    case "FILE":
      return "file";
    default:
      return "text";
  }
}

/** The initial form value of an input (its default, as the widget shows it). */
export function initialValue(spec: InputSpec): string | boolean | string[] {
  const d = spec.defaults;
  const widget = widgetFor(spec);
  if (widget === "checkbox") return d === true;
  if (widget === "multiselect") return Array.isArray(d) ? d.map(String) : [];
  if (d === undefined || d === null) return "";
  if (widget === "textarea") return typeof d === "string" ? d : JSON.stringify(d, null, 2);
  if (widget === "datetime-local" && typeof d === "string") return d.replace(/Z$/, "").slice(0, 19);
  return String(d);
}

export class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** The JSON value to send for one field, or undefined to leave it out (server defaults). */
export function toValue(spec: InputSpec, raw: string | boolean | string[]): unknown {
  const widget = widgetFor(spec);
  if (widget === "checkbox") return raw === true;
  if (widget === "multiselect") return Array.isArray(raw) && raw.length ? raw : undefined;
  const text = typeof raw === "string" ? raw : "";
  if (text.trim() === "") return undefined;
  if (spec.type === "INT") {
    if (!/^-?\d+$/.test(text.trim())) throw new FieldError(spec.id, "must be a whole number");
    return Number.parseInt(text, 10);
  }
  if (spec.type === "FLOAT") {
    const n = Number(text);
    if (Number.isNaN(n)) throw new FieldError(spec.id, "must be a number");
    return n;
  }
  if (widget === "textarea") {
    try {
      return JSON.parse(text);
    } catch {
      throw new FieldError(spec.id, "must be valid JSON");
    }
  }
  if (widget === "datetime-local") {
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? text : date.toISOString();
  }
  return text;
}

/** Every field's value, or a map of field → message for those that cannot be converted. */
export function formValues(
  specs: InputSpec[],
  raw: Record<string, string | boolean | string[]>,
): { values: Record<string, unknown>; errors: Record<string, string> } {
  const values: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const spec of specs) {
    try {
      const value = toValue(spec, raw[spec.id] ?? initialValue(spec));
      if (value !== undefined) values[spec.id] = value;
    } catch (error) {
      if (error instanceof FieldError) errors[spec.id] = error.message;
      else throw error;
    }
  }
  return { values, errors };
}
