/** Two revisions side by side (CodeMirror's merge view). */
import { yaml } from "@codemirror/lang-yaml";
import { EditorState } from "@codemirror/state";
import { MergeView } from "@codemirror/merge";
import { basicSetup, EditorView } from "codemirror";
import { useEffect, useRef } from "react";

export default function DiffView({ left, right }: { left: string; right: string }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const readOnly = [basicSetup, yaml(), EditorState.readOnly.of(true), EditorView.editable.of(false)];
    const view = new MergeView({ a: { doc: left, extensions: readOnly }, b: { doc: right, extensions: readOnly }, parent: host.current! });
    return () => view.destroy();
  }, [left, right]);
  return <div className="diff-view" ref={host} />;
}
