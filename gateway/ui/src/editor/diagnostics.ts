/** Server validation problems as CodeMirror lint diagnostics at their exact line:col. */
import type { Diagnostic } from "@codemirror/lint";
import type { Text } from "@codemirror/state";
import type { Problem } from "../api";

/** The document range a problem at 1-based `line`:`column` marks: from there to the end of
 * the word (or one character). */
export function problemRange(doc: Text, line: number, column: number): { from: number; to: number } {
  const l = doc.line(Math.min(Math.max(1, line), doc.lines));
  const from = Math.min(l.from + Math.max(0, column - 1), l.to);
  const rest = doc.sliceString(from, l.to);
  const word = /^[^\s:,\]}]+/.exec(rest);
  const to = word ? from + word[0].length : Math.min(from + 1, l.to);
  return { from, to: Math.max(to, from) };
}

export function toDiagnostics(doc: Text, problems: Problem[]): Diagnostic[] {
  return problems.map((p) => ({ ...problemRange(doc, p.line, p.column), severity: "error", message: `${p.path}: ${p.message}` }));
}

