"""The template sandbox against hostile expressions: escapes, denial of service, size.

Every payload ends in an `ExpressionError` with a clear message, quickly; honest templates
still render.
"""

from __future__ import annotations

import concurrent.futures

import pytest

from flows import ExpressionEngine, ExpressionError
from flows import _render_budget as budget

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ range.__init__.__globals__ }}",
    "{{ now.__globals__ }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    "{{ ''|attr('__class__') }}",
]

TOO_BIG = {
    "ljust": "{{ 'a'.ljust(2000000000) }}",
    "center": "{{ 'a'.center(2000000000) }}",
    "rjust": "{{ 'a'.rjust(2000000000) }}",
    "zfill": "{{ '1'.zfill(2000000000) }}",
    "percent width": "{{ '%0300000000d' % 1 }}",
    "percent star": "{{ '%*d' % (2000000000, 1) }}",
    "format width": "{{ '{:>999999999}'.format(1) }}",
    "format nested width": "{{ '{:>{}}'.format(1, 2000000000) }}",
    "center filter": "{{ 'a' | center(2000000000) }}",
    "indent filter": "{{ 'a' | indent(2000000000, true) }}",
    "format filter": "{{ '%0999999999d' | format(1) }}",
    "many small pads": "{{ range(100000) | map('string') | map('center', 2000) | join }}",
    "repeat": "{{ 'a' * 2000000000 }}",
    "power": "{{ 10 ** 10000000 }}",
}

HONEST = {
    "{{ 'ab'.ljust(5, '-') }}": "ab---",
    "{{ '%05d' % 42 }}": "00042",
    "{{ '{:>5}|{}'.format(1, 2) }}": "    1|2",
    "{{ 'x' | center(5) }}": "  x  ",
    "{% for i in range(3) %}{{ i }}{% endfor %}": "012",
}


@pytest.fixture
def engine() -> ExpressionEngine:
    return ExpressionEngine()


@pytest.mark.parametrize("payload", ESCAPES)
def test_escapes_are_refused(engine: ExpressionEngine, payload: str) -> None:
    with pytest.raises(ExpressionError):
        engine.render(payload, {})


@pytest.mark.parametrize("name", list(TOO_BIG))
def test_huge_strings_are_refused_before_they_are_built(
    engine: ExpressionEngine, name: str
) -> None:
    with pytest.raises(ExpressionError, match=r"would build|larger than|longer than"):
        engine.render(TOO_BIG[name], {})


@pytest.mark.parametrize(
    "payload",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x",
        "{% macro f(n) %}{% for i in range(100000) %}{{ n }}{% endfor %}{% endmacro %}"
        "{% for j in range(100000) %}{% set _ = f(j) %}{% endfor %}",
    ],
)
def test_endless_loops_end_at_the_time_budget(
    engine: ExpressionEngine, payload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "RENDER_TIMEOUT_S", 0.2)
    with pytest.raises(ExpressionError, match=r"took longer than 0\.2 s"):
        engine.render(payload, {})
    with pytest.raises(ExpressionError, match="took longer than"):
        engine.evaluate(payload, {})


@pytest.mark.parametrize(("template", "expected"), list(HONEST.items()))
def test_honest_templates_render(engine: ExpressionEngine, template: str, expected: str) -> None:
    assert engine.render(template, {}) == expected


@pytest.mark.parametrize(
    ("template", "linear"),
    [
        ("plain text", True),
        ("{{ trigger.data.id }}", True),
        ("https://x/{{ vars.channel }}/{{ trigger.data['id'] }}", True),
        ("{{ trigger.data | tojson }}", True),
        ("{{ trigger.value.total > inputs.threshold and not vars.off }}", True),
        ("{{ a ?? b }}", True),
        ("{{ x.y is defined }}", True),
        ("{{ x | default('n/a') | upper }}", True),
        ("{% for i in range(10) %}{{ i }}{% endfor %}", False),
        ("{% set x = 1 %}{{ x }}", False),
        ("{{ range(10) | list }}", False),
        ("{{ 'a'.ljust(5) }}", False),
        ("{{ x | jq('.a') }}", False),
        ("{{ x | map('upper') | list }}", False),
        ("{{ 2 ** 64 }}", False),
        ("{{ now() }}", False),
        ("{{ render(vars.t) }}", False),
    ],
)
def test_only_linear_templates_may_render_inline(
    engine: ExpressionEngine, template: str, linear: bool
) -> None:
    assert engine.is_linear(template) is linear
    assert engine.is_linear({"k": [template, "{{ a }}"]}) is linear


def test_the_time_budget_holds_on_another_thread(
    engine: ExpressionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "RENDER_TIMEOUT_S", 0.2)
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(engine.render, loop, {})
        with pytest.raises(ExpressionError, match="rendering took longer"):
            future.result(timeout=30)
