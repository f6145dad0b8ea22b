"""Property-based fuzz (Hypothesis) of the flow loader and the expression engine.

Whatever the input, the loader answers with problems (never raises, never hangs) and the
engine renders or raises `ExpressionError` (nothing else: no RecursionError, no
MemoryError, no TypeError escaping as a 500).
"""

from __future__ import annotations

import string
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows import ExpressionEngine, ExpressionError, Problem, validate_flow_text

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "id",
        "namespace",
        "tasks",
        "triggers",
        "inputs",
        "variables",
        "type",
        "message",
        "then",
        "errors",
    ]
)
_flows = st.dictionaries(_keys, _values, max_size=6)

_yaml_chars = st.text(alphabet=string.printable + "&*!|>{}[]-:#", max_size=300)


@FUZZ
@given(_yaml_chars)
def test_loader_answers_any_text_with_problems(text: str) -> None:
    problems = validate_flow_text(text, "fuzz.yaml")
    assert all(isinstance(p, Problem) for p in problems)


@FUZZ
@given(_flows)
def test_loader_answers_any_structure_with_problems(document: dict[str, Any]) -> None:
    problems = validate_flow_text(yaml.safe_dump(document), "fuzz.yaml")
    assert all(isinstance(p, Problem) for p in problems)


_pieces = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        " for x in ",
        " endfor ",
        " if ",
        " endif ",
        "inputs",
        "inputs.a",
        "vars.b",
        "|",
        "upper",
        "join",
        "(",
        ")",
        "[",
        "]",
        ".",
        ",",
        "'s'",
        "1",
        "**",
        "*",
        "%",
        "~",
        "range(",
        "__class__",
        "secret(",
        "?:",
        "??",
        "x",
        " ",
        "\n",
    ]
)
_templates = st.lists(_pieces, max_size=25).map("".join)


@FUZZ
@given(_templates)
def test_engine_renders_or_raises_expression_error(template: str) -> None:
    engine = ExpressionEngine(secret_lookup=lambda _name: None)
    context = {"inputs": {"a": [1, 2]}, "vars": {"b": "text"}}
    try:
        result = engine.render(template, context)
    except ExpressionError:
        return
    assert isinstance(result, str)
