import { Text } from "@codemirror/state";
import { describe, expect, it } from "vitest";
import { problemRange, toDiagnostics } from "./diagnostics";

describe("validation markers", () => {
  const doc = Text.of(["id: x", "namespace: a", "tasks:", "  - id: t", "    type: core.Nope"]);

  it("mark the word at the problem's 1-based line and column", () => {
    const range = problemRange(doc, 5, 11);
    expect(doc.sliceString(range.from, range.to)).toBe("core.Nope");
    expect(doc.lineAt(range.from).number).toBe(5);
  });

  it("turn API problems into error diagnostics", () => {
    const [d] = toDiagnostics(doc, [{ file: "<api>", line: 4, column: 5, path: "tasks[0].id", message: "bad" }]);
    expect(d).toMatchObject({ severity: "error", message: "tasks[0].id: bad" });
    expect(doc.sliceString(d.from, d.to)).toBe("id");
  });
});
