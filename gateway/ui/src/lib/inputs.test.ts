import { describe, expect, it } from "vitest";
import { formValues, initialValue, widgetFor } from "./inputs";

describe("run form", () => {
  it("gives each input type its widget", () => {
    expect(widgetFor({ id: "a", type: "INT" })).toBe("number");
    expect(widgetFor({ id: "a", type: "BOOLEAN" })).toBe("checkbox");
    expect(widgetFor({ id: "a", type: "ENUM" })).toBe("select");
    expect(widgetFor({ id: "a", type: "MULTISELECT" })).toBe("multiselect");
    expect(widgetFor({ id: "a", type: "JSON" })).toBe("textarea");
    expect(widgetFor({ id: "a", type: "SECRET" })).toBe("password");
    expect(widgetFor({ id: "a", type: "DATE" })).toBe("date");
    expect(widgetFor({ id: "a", type: "STRING" })).toBe("text");
  });

  it("starts from defaults and converts values, naming bad fields", () => {
    const specs = [
      { id: "n", type: "INT", defaults: 3 },
      { id: "f", type: "FLOAT" },
      { id: "j", type: "JSON" },
      { id: "b", type: "BOOLEAN", defaults: true },
      { id: "s", type: "STRING" },
    ];
    expect(initialValue(specs[0])).toBe("3");
    const ok = formValues(specs, { n: "42", f: "1.5", j: '{"a":1}', b: true, s: "" });
    expect(ok).toEqual({ values: { n: 42, f: 1.5, j: { a: 1 }, b: true }, errors: {} });
    const bad = formValues(specs, { n: "4.2", f: "x", j: "{", b: false, s: "hi" });
    expect(bad.errors).toEqual({ n: "must be a whole number", f: "must be a number", j: "must be valid JSON" });
  });
});
