"""Pebble syntax Kestra documents, in our sandbox, beside the Jinja spelling."""

from __future__ import annotations

from typing import Any

import pytest

from flows import ExpressionEngine, ExpressionError, build_context


@pytest.fixture(scope="module")
def engine() -> ExpressionEngine:
    return ExpressionEngine()


def _ctx(**inputs: Any) -> dict[str, Any]:
    return build_context(inputs=inputs, outputs={"t": {"value": "v"}}, envs={})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.n > 1 ? 'big' : 'small' }}", "big"),
        ("{{ inputs.n > 5 ? 'big' : inputs.n > 1 ? 'mid' : 'small' }}", "mid"),
        ("{{ {'k': inputs.n > 1 ? 'y' : 'n'}['k'] }}", "y"),
        ("{{ inputs.none ?? 'fallback' }}", "fallback"),
        ("{{ inputs.missing ?? 'fallback' }}", "fallback"),
        ("{{ outputs.nope.value ?? outputs.t.value }}", "v"),
        ("{{ outputs['nope'].value ?? '' }}", ""),
        ("{{ inputs.n ?? 0 }}", 2),
        ("{{ inputs.items contains 'b' }}", True),
        ("{{ inputs.text contains 'ell' }}", True),
        ("{{ inputs.map contains 'k' }}", True),
        ("{{ inputs.none is null }}", True),
        ("{{ inputs.items is empty }}", False),
        ("{{ inputs.doc is json }}", True),
        ("{{ inputs.text is json }}", False),
        ("{{ inputs.n is defined }}", True),
        ("{{ json(inputs.doc).a }}", 1),
        ("{{ yaml('a: [1, 2]').a[1] }}", 2),
        ("{{ inputs.quote | escapeChar('single') }}", "it\\'s"),
        ("{{ inputs.quote | escapeChar('shell') }}", "it'\\''s"),
        ("{{ 'yes' if inputs.n > 1 else 'no' }}", "yes"),  # Jinja's spelling still works
        ("{{ 'a?b:c' }}", "a?b:c"),  # operators inside strings are text
    ],
)
def test_pebble_syntax(engine: ExpressionEngine, template: str, expected: Any) -> None:
    context = _ctx(
        n=2, none=None, items=["a", "b"], text="hello", map={"k": 1}, doc='{"a": 1}', quote="it's"
    )
    assert engine.evaluate(template, context) == expected


def test_ternary_evaluates_only_the_chosen_branch(engine: ExpressionEngine) -> None:
    assert engine.evaluate("{{ true ? 'ok' : undefinedName }}", _ctx()) == "ok"
    with pytest.raises(ExpressionError, match="undefinedName"):
        engine.evaluate("{{ false ? 'ok' : undefinedName }}", _ctx())


def test_coalesce_still_sandboxed(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError, match="unsafe"):
        engine.evaluate("{{ inputs.text.__class__ ?? 'x' }}", _ctx(text="a"))


def test_payload_text_is_not_rendered(engine: ExpressionEngine) -> None:
    context = build_context(trigger={"body": "{{ 7 * 7 }} ?? x"}, envs={})
    assert engine.render("{{ trigger.body ?? 'none' }}", context) == "{{ 7 * 7 }} ?? x"


def test_render_function_renders_flow_variables(engine: ExpressionEngine) -> None:
    context = build_context(
        inputs={"who": "Ada"}, variables={"greeting": "hi {{ inputs.who }}"}, envs={}
    )
    assert engine.render("{{ vars.greeting }}", context) == "hi {{ inputs.who }}"
    assert engine.render("{{ render(vars.greeting) }}", context) == "hi Ada"


def test_render_function_never_renders_event_data_or_inputs(engine: ExpressionEngine) -> None:
    context = build_context(
        inputs={"evil": "{{ 7 * 7 }}"}, trigger={"body": "{{ 6 * 7 }}"}, envs={}
    )
    for source in ("{{ render(trigger.body) }}", "{{ render(inputs.evil) }}"):
        with pytest.raises(ExpressionError, match="never templates"):
            engine.render(source, context)
    assert engine.render("{{ render('plain text') }}", context) == "plain text"
    chained = build_context(
        variables={"a": "{{ vars.b }}", "b": "{{ trigger.body }}"},
        trigger={"body": "{{ 6 * 7 }}"},
        envs={},
    )
    # vars.a renders to vars.b's text (flow-authored: rendered again) and then to the
    # payload's text, which is data: it is not rendered.
    assert engine.render("{{ render(vars.a) }}", chained) == "{{ 6 * 7 }}"


def test_print_context_and_current_each_output(engine: ExpressionEngine) -> None:
    context = build_context(
        inputs={"a": 1},
        outputs={"t": {"x": {"value": "in-x"}, "y": {"value": "in-y"}}},
        taskrun={"id": "r", "value": "y", "iteration": 1, "attemptsCount": 0},
        envs={},
    )
    assert '"inputs": {"a": 1}' in engine.render("{{ printContext() }}", context)
    assert engine.evaluate("{{ currentEachOutput(outputs.t).value }}", context) == "in-y"


def test_defined_and_null_tests_on_missing_paths_do_not_fail(engine: ExpressionEngine) -> None:
    context = build_context(inputs={"a": None}, outputs={"t": {"v": 1}}, envs={})
    assert engine.evaluate("{{ outputs.missing.value is defined }}", context) is False
    assert engine.evaluate("{{ outputs.missing.value is not defined }}", context) is True
    assert engine.evaluate("{{ outputs.t.v is defined }}", context) is True
    assert engine.evaluate("{{ inputs.a is defined }}", context) is True  # null is defined
    assert engine.evaluate("{{ outputs.missing.value is null }}", context) is True
    assert engine.evaluate("{{ outputs.t.v is not null }}", context) is True


def test_globals_come_from_kestrel_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows import global_variables

    monkeypatch.setenv("KESTREL_GLOBALS", '{"region": "eu", "limits": {"n": 3}}')
    assert global_variables() == {"region": "eu", "limits": {"n": 3}}
    monkeypatch.setenv("KESTREL_GLOBALS", "[1]")
    with pytest.raises(ExpressionError, match="JSON object"):
        global_variables()
    monkeypatch.delenv("KESTREL_GLOBALS")
    assert global_variables() == {}
