/** The flow editor: CodeMirror 6 with YAML, completion and hover from the flow JSON Schema,
 * and the server's validation as lint markers at the exact line:col. Loaded lazily. */
import { yaml, yamlLanguage } from "@codemirror/lang-yaml";
import { linter, lintGutter } from "@codemirror/lint";
import { EditorState, Prec } from "@codemirror/state";
import { hoverTooltip, keymap, type EditorView as View } from "@codemirror/view";
import { basicSetup, EditorView } from "codemirror";
import { stateExtensions } from "codemirror-json-schema";
import { yamlCompletion, yamlSchemaHover } from "codemirror-json-schema/yaml";
import { useEffect, useRef } from "react";
import type { Problem } from "../api";
import { toDiagnostics } from "./diagnostics";

type Schema = Parameters<typeof stateExtensions>[0];

export interface YamlEditorProps {
  value: string;
  schema: object | null;
  validate: (source: string) => Promise<Problem[]>;
  onProblems: (problems: Problem[]) => void;
  onChange: (source: string) => void;
  onSave: (source: string) => void;
}

export default function YamlEditor({ value, schema, validate, onProblems, onChange, onSave }: YamlEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<View | null>(null);
  const callbacks = useRef({ validate, onProblems, onChange, onSave });
  callbacks.current = { validate, onProblems, onChange, onSave };

  useEffect(() => {
    const extensions = [
      basicSetup,
      yaml(),
      lintGutter(),
      linter(
        async (v) => {
          const problems = await callbacks.current.validate(v.state.doc.toString());
          callbacks.current.onProblems(problems);
          return toDiagnostics(v.state.doc, problems);
        },
        { delay: 300 },
      ),
      Prec.highest(
        keymap.of([
          {
            key: "Mod-s",
            preventDefault: true,
            run: (v) => {
              callbacks.current.onSave(v.state.doc.toString());
              return true;
            },
          },
        ]),
      ),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) callbacks.current.onChange(u.state.doc.toString());
      }),
    ];
    if (schema) {
      extensions.push(
        yamlLanguage.data.of({ autocomplete: yamlCompletion() }),
        hoverTooltip(yamlSchemaHover()),
        stateExtensions(schema as Schema),
      );
    }
    const editor = new EditorView({ state: EditorState.create({ doc: value, extensions }), parent: host.current! });
    view.current = editor;
    return () => editor.destroy();
    // The document is owned by the editor once created; a new `value` replaces it below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [schema]);

  useEffect(() => {
    const editor = view.current;
    if (editor && editor.state.doc.toString() !== value) {
      editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: value } });
    }
  }, [value]);

  return <div className="yaml-editor" ref={host} data-testid="flow-editor" />;
}
