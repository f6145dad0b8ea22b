"""Unit tests of the expression engine: context, functions, sandbox, errors, masking."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from flows._errors import ExpressionError
from flows._expressions import (
    MAX_SEQUENCE,
    ExpressionEngine,
    build_context,
    default_secret_lookup,
    environment_variables,
    is_truthy,
    mask_secrets,
)


@pytest.fixture
def engine() -> ExpressionEngine:
    return ExpressionEngine()


@pytest.fixture
def ctx() -> dict[str, Any]:
    return build_context(
        flow={"id": "order-alerts", "namespace": "shop.orders", "revision": 3},
        execution={
            "id": "exec-1",
            "start_date": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
            "state": "RUNNING",
        },
        inputs={"threshold": 100, "items": [1, 2, 3], "name": "Zoë"},
        outputs={"fetch": {"body": {"total": 250}, "code": 200}, "my-task": {"value": "v"}},
        variables={"channel": "alerts"},
        labels={"team": "data"},
        trigger={
            "topic": "orders",
            "key": "k1",
            "value": {"total": 150, "id": "o-1", "tags": ["a", "b"]},
        },
        taskrun={"id": "tr-1", "value": "x", "iteration": 0, "attempts_count": 1},
        envs={"region": "eu"},
    )


# --------------------------------------------------------------------------- context


def test_context_has_kestras_names(engine: ExpressionEngine, ctx: dict[str, Any]) -> None:
    template = (
        "{{ flow.id }}|{{ flow.namespace }}|{{ flow.revision }}|{{ execution.id }}|"
        "{{ execution.state }}|{{ execution.startDate }}|{{ execution.originalId }}|"
        "{{ inputs.threshold }}|{{ outputs.fetch.body.total }}|{{ outputs['my-task'].value }}|"
        "{{ vars.channel }}|{{ labels.team }}|{{ trigger.topic }}|{{ trigger.value.id }}|"
        "{{ taskrun.id }}|{{ taskrun.value }}|{{ taskrun.iteration }}|{{ taskrun.attemptsCount }}|"
        "{{ envs.region }}"
    )
    assert engine.render(template, ctx) == (
        "order-alerts|shop.orders|3|exec-1|RUNNING|2024-05-01T12:30:00+00:00||100|250|v|"
        "alerts|data|orders|o-1|tr-1|x|0|1|eu"
    )


def test_context_defaults_and_omissions() -> None:
    context = build_context(envs={})
    assert context == {"inputs": {}, "outputs": {}, "vars": {}, "labels": {}, "envs": {}}
    # Absent parts are undefined, so `is defined` works and a use names the variable.
    engine = ExpressionEngine()
    assert engine.render("{{ trigger is defined }}", context) == "false"
    with pytest.raises(ExpressionError, match="'trigger' is undefined"):
        engine.render("{{ trigger.value }}", context)


def test_context_from_flow_model_supplies_vars_and_labels() -> None:
    from flows._loader import parse_flow

    flow = parse_flow(
        "id: f1\nnamespace: ns\nlabels: {team: data}\nvariables: {channel: c}\n"
        "tasks:\n  - {id: t, type: core.Log, message: hi}\n"
    )
    context = build_context(flow=flow, envs={})
    assert context["flow"] == {"id": "f1", "namespace": "ns", "revision": None}
    assert context["vars"] == {"channel": "c"}
    assert context["labels"] == {"team": "data"}


def test_context_from_objects_and_label_lists() -> None:
    class Run:
        id = "tr-9"
        value = None
        iteration = 2
        attempts_count = 3

    context = build_context(
        flow={"id": "f", "namespace": "ns", "labels": [{"key": "a", "value": "b"}]},
        taskrun=Run(),
        envs={},
    )
    assert context["taskrun"] == {"id": "tr-9", "value": None, "iteration": 2, "attemptsCount": 3}
    assert context["labels"] == {"a": "b"}
    assert context["flow"]["revision"] is None


def test_envs_from_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENV_MY_REGION", "eu-west")
    monkeypatch.setenv("NOT_ENV_THING", "no")
    assert environment_variables()["my_region"] == "eu-west"
    assert "thing" not in environment_variables()
    engine = ExpressionEngine()
    assert engine.render("{{ envs.my_region }}", build_context()) == "eu-west"


def test_mapping_keys_win_over_dict_methods(engine: ExpressionEngine) -> None:
    context = build_context(inputs={"items": [1, 2], "keys": "k", "values": "v"}, envs={})
    assert engine.evaluate("{{ inputs.items }}", context) == [1, 2]
    assert engine.render("{{ inputs.keys }}/{{ inputs.values }}", context) == "k/v"
    assert engine.evaluate("{{ vars.items() | list }}", build_context(variables={"a": 1})) == [
        ("a", 1)
    ]


# --------------------------------------------------------------------------- rendering


def test_text_without_markup_is_returned_as_is(engine: ExpressionEngine) -> None:
    text = "no templates here { } }} {"
    assert engine.render(text, {}) is text
    assert engine.evaluate(text, {}) is text
    assert engine.render_value(text, {}) is text


def test_render_writes_values_kestra_style(engine: ExpressionEngine) -> None:
    context = {"m": {"a": [1, True, None], "é": "ü"}, "b": False, "n": None, "f": 1.5}
    assert engine.render("{{ m }}|{{ b }}|{{ n }}|{{ f }}", context) == (
        '{"a":[1,true,null],"é":"ü"}|false||1.5'
    )
    assert engine.render("{{ d }}", {"d": timedelta(minutes=5)}) == "PT5M"


def test_render_keeps_trailing_newline(engine: ExpressionEngine) -> None:
    assert engine.render("{{ 1 }}\n", {}) == "1\n"


def test_string_concatenation_with_tilde(engine: ExpressionEngine, ctx: dict[str, Any]) -> None:
    assert engine.render("{{ vars.channel ~ '-' ~ inputs.threshold }}", ctx) == "alerts-100"


def test_loops_and_conditions(engine: ExpressionEngine, ctx: dict[str, Any]) -> None:
    template = (
        "{% for t in trigger.value.tags %}{{ t }}{% if not loop.last %},{% endif %}{% endfor %}"
    )
    assert engine.render(template, ctx) == "a,b"
    assert engine.render("{% if trigger.value.total > inputs.threshold %}big{% endif %}", ctx) == (
        "big"
    )


# --------------------------------------------------------------------------- native values


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.items }}", [1, 2, 3]),
        ("{{ inputs.threshold }}", 100),
        ("{{ trigger.value.total > inputs.threshold }}", True),
        ("{{ trigger.value }}", {"total": 150, "id": "o-1", "tags": ["a", "b"]}),
        ("{{ [inputs.threshold, vars.channel] }}", [100, "alerts"]),
        ("{{ range(3) }}", [0, 1, 2]),
        ("{{ inputs.items | map('string') }}", ["1", "2", "3"]),
        ("{{ none }}", None),
        ("{{- inputs.threshold -}}", 100),
        ("n={{ inputs.threshold }}", "n=100"),
        ("{{ inputs.threshold }}\n", "100\n"),
        ("{{ inputs.threshold }}{{ inputs.threshold }}", "100100"),
        ("{% if true %}{{ inputs.items }}{% endif %}", "[1,2,3]"),
    ],
)
def test_evaluate_native(
    engine: ExpressionEngine, ctx: dict[str, Any], template: str, expected: Any
) -> None:
    assert engine.evaluate(template, ctx) == expected


def test_evaluate_now_is_a_datetime(engine: ExpressionEngine) -> None:
    value = engine.evaluate("{{ now() }}", {})
    assert isinstance(value, datetime)
    assert value.tzinfo is not None


def test_evaluate_finds_undefined_inside_built_values(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError, match="'vars' has no attribute 'nope'"):
        engine.evaluate("{{ [1, {'a': vars.nope}] }}", {"vars": {}})
    with pytest.raises(ExpressionError, match="is undefined"):
        engine.evaluate("{{ missing }}", {})


def test_render_value_recurses(engine: ExpressionEngine, ctx: dict[str, Any]) -> None:
    value = {
        "subject": "{{ vars.channel }}",
        "values": "{{ inputs.items }}",
        "{{ vars.channel }}-key": ("{{ inputs.threshold }}", "n={{ inputs.threshold }}"),
        "nested": [{"deep": "{{ trigger.value.total }}"}, 5, None, True, 1.5],
        7: "{{ 7 }}",
    }
    assert engine.render_value(value, ctx) == {
        "subject": "alerts",
        "values": [1, 2, 3],
        "alerts-key": (100, "n=100"),
        "nested": [{"deep": 150}, 5, None, True, 1.5],
        7: 7,
    }


def test_render_value_leaves_scalars_untouched(engine: ExpressionEngine) -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    for scalar in (None, 1, 1.5, True, when):
        assert engine.render_value(scalar, {}) is scalar


def test_render_value_errors_name_the_property_path(engine: ExpressionEngine) -> None:
    value = {"headers": {"X-Id": "{{ nope }}"}}
    with pytest.raises(ExpressionError) as info:
        engine.render_value(value, {}, task="call", prop="options")
    assert info.value.prop == "options.headers.X-Id"
    with pytest.raises(ExpressionError) as info:
        engine.render_value(["ok", "{{ nope }}"], {}, task="call", prop="args")
    assert info.value.prop == "args[1]"


# --------------------------------------------------------------------------- payloads are data


def test_payload_is_never_rendered_twice(engine: ExpressionEngine) -> None:
    context = build_context(trigger={"value": "{{ 7*7 }}", "body": {"k": "{% raw %}"}}, envs={})
    assert engine.render("{{ trigger.value }}", context) == "{{ 7*7 }}"
    assert engine.evaluate("{{ trigger.value }}", context) == "{{ 7*7 }}"
    assert engine.render("{{ trigger.value | tojson }}", context) == '"{{ 7*7 }}"'
    assert engine.render_value(
        {"p": "{{ trigger.value }}", "q": ["{{ trigger.body }}"]}, context
    ) == {
        "p": "{{ 7*7 }}",
        "q": [{"k": "{% raw %}"}],
    }
    assert engine.render("x {{ trigger.value }} y", context) == "x {{ 7*7 }} y"


# --------------------------------------------------------------------------- truthiness


@pytest.mark.parametrize(
    "value",
    [None, False, 0, 0.0, "", "   ", "false", "FALSE", " False ", "0", "null", "NULL", [], {}, ()],
)
def test_falsy(value: Any) -> None:
    assert is_truthy(value) is False


@pytest.mark.parametrize(
    "value", [True, 1, -1, 0.1, "true", "yes", "no", "00", "x", [0], {"a": None}, object()]
)
def test_truthy(value: Any) -> None:
    assert is_truthy(value) is True


def test_evaluate_condition(engine: ExpressionEngine, ctx: dict[str, Any]) -> None:
    assert engine.evaluate_condition("{{ trigger.value.total > inputs.threshold }}", ctx)
    assert not engine.evaluate_condition("{{ trigger.value.total > 1000 }}", ctx)
    assert not engine.evaluate_condition("{{ 'false' }}", ctx)
    assert not engine.evaluate_condition("false", ctx)
    assert not engine.evaluate_condition("{{ [] }}", ctx)


# --------------------------------------------------------------------------- errors


def test_undefined_attribute_error_names_task_property_and_expression(
    engine: ExpressionEngine, ctx: dict[str, Any]
) -> None:
    with pytest.raises(ExpressionError) as info:
        engine.render("{{ vars.chanel }}", ctx, task="notify", prop="subject")
    error = info.value
    assert (error.task, error.prop, error.expression) == ("notify", "subject", "{{ vars.chanel }}")
    text = str(error)
    assert "notify" in text
    assert "subject" in text
    assert "'vars' has no attribute 'chanel'" in text
    assert "did you mean 'channel'?" in text
    assert "{{ vars.chanel }}" in text


def test_undefined_messages_name_the_path(engine: ExpressionEngine, ctx: dict[str, Any]) -> None:
    cases = {
        "{{ outputs.fetch.body.missing }}": "'outputs.fetch.body' has no attribute 'missing'",
        "{{ trigger.value['nope'] }}": "'trigger.value' has no attribute 'nope'",
        "{{ inputs.items[9] }}": "'inputs.items' has no element 9",
        "{{ var.channel }}": "'var' is undefined (did you mean 'vars'?)",
        "{{ nothing_at_all }}": "'nothing_at_all' is undefined",
    }
    for template, message in cases.items():
        with pytest.raises(ExpressionError) as info:
            engine.render(template, ctx, task="t", prop="p")
        assert message in str(info.value), template


def test_syntax_error_includes_jinjas_message(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError) as info:
        engine.render("{{ vars.channel ", {}, task="notify", prop="subject")
    assert "syntax error" in str(info.value)
    assert "end of print statement" in str(info.value)
    assert info.value.expression == "{{ vars.channel "
    with pytest.raises(ExpressionError, match="syntax error"):
        engine.evaluate("{% if %}", {}, task="t", prop="p")


def test_unknown_filter_and_filter_failures(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError, match="No filter named 'nope'"):
        engine.render("{{ 1 | nope }}", {})
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        engine.render("{{ 1 / 0 }}", {})
    with pytest.raises(ExpressionError, match="'abc' is not a number"):
        engine.render("{{ 'abc' | number }}", {})


def test_long_template_error_shows_the_failing_line(engine: ExpressionEngine) -> None:
    template = "line one\nline two {{ vars.nope }}\nline three"
    with pytest.raises(ExpressionError) as info:
        engine.render(template, {"vars": {}}, task="t", prop="script")
    assert info.value.expression == "line two {{ vars.nope }} (line 2)"


def test_errors_are_not_chained(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError) as info:
        engine.render("{{ nope }}", {})
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


# --------------------------------------------------------------------------- security


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ x|attr('__class__') }}",
    "{{ ''|attr('__class__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ x['__class__'] }}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '{0.__class__}'.format_map({'0': x}) }}",
    "{{ '%s'.__mod__ }}",
    "{{ '%s'.__mod__(x) }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ self.__init__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__self__ }}",
    "{{ range.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ now.__globals__ }}",
    "{{ secret.__self__ }}",
    "{{ kv.__func__.__globals__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ x.__class__.__init__.__globals__['os'] }}",
    "{{ [1]|map(attribute='__class__')|list }}",
    "{{ x.items.__self__ }}",
    "{{ range(10**9) }}",
    "{{ range(10**9)|list }}",
    "{{ 'a' * 10**9 }}",
    "{{ [0] * 10**9 }}",
    "{{ 2 ** (10 ** 7) }}",
    "{{ x.update({'a': 1}) }}",
    "{{ l.append(1) }}",
    "{% include 'x.html' %}",
    "{% import 'x.html' as y %}",
]


@pytest.mark.parametrize("template", ESCAPES)
@pytest.mark.parametrize("mode", ["render", "evaluate", "render_value"])
def test_sandbox_escapes_are_refused(template: str, mode: str) -> None:
    engine = ExpressionEngine()
    context = {"x": {"a": "b"}, "l": [1]}
    with pytest.raises(ExpressionError):
        getattr(engine, mode)(template, context, task="t", prop="p")
    assert context == {"x": {"a": "b"}, "l": [1]}


def test_sandbox_error_says_so(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError, match=r"refused by the sandbox.*'__class__'"):
        engine.render("{{ ''.__class__ }}", {})
    with pytest.raises(ExpressionError, match="MAX_RANGE"):
        engine.render("{{ range(10**9) }}", {})


def test_default_globals_trimmed(engine: ExpressionEngine) -> None:
    for name in ("lipsum", "cycler", "joiner"):
        assert engine.render(f"{{{{ {name} is defined }}}}", {}) == "false"
    assert engine.evaluate("{{ range(2) }}", {}) == [0, 1]
    assert engine.evaluate("{{ dict(a=1) }}", {}) == {"a": 1}


def test_reasonable_sizes_still_work(engine: ExpressionEngine) -> None:
    assert engine.render("{{ 'ab' * 3 }}", {}) == "ababab"
    assert engine.evaluate("{{ 2 ** 10 }}", {}) == 1024
    assert engine.evaluate("{{ 'a' * 10 }}", {}) == "a" * 10
    assert len(engine.render("{{ 'a' * n }}", {"n": MAX_SEQUENCE})) == MAX_SEQUENCE


# --------------------------------------------------------------------------- functions


def test_now(engine: ExpressionEngine) -> None:
    rendered = engine.render("{{ now() }}", {})
    parsed = datetime.fromisoformat(rendered)
    assert parsed.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - parsed) < timedelta(seconds=5)
    paris = engine.evaluate("{{ now(timeZone='Europe/Paris') }}", {})
    assert str(paris.tzinfo) == "Europe/Paris"
    with pytest.raises(ExpressionError, match="unknown time zone 'Mars/Base'"):
        engine.render("{{ now(timeZone='Mars/Base') }}", {})


def test_uuid(engine: ExpressionEngine) -> None:
    first, second = engine.render("{{ uuid() }} {{ uuid() }}", {}).split()
    assert len(first) == 36
    assert first != second


def test_json_filters(engine: ExpressionEngine) -> None:
    context = {"v": {"name": "Zoë", "tag": "<b>&'", "when": datetime(2024, 1, 2, tzinfo=UTC)}}
    expected = '{"name":"Zoë","tag":"<b>&\'","when":"2024-01-02T00:00:00+00:00"}'
    for name in ("json", "tojson", "toJson"):
        assert engine.render(f"{{{{ v | {name} }}}}", context) == expected
    assert engine.render("{{ v | tojson(indent=2) }}", {"v": [1]}) == "[\n  1\n]"
    text = {"t": '{"a": [1, 2], "b": "é"}'}
    assert engine.evaluate("{{ t | fromjson }}", text) == {"a": [1, 2], "b": "é"}
    assert engine.evaluate("{{ fromJson(t).a }}", text) == [1, 2]
    assert engine.evaluate("{{ t | fromJson | tojson | fromjson }}", text) == {
        "a": [1, 2],
        "b": "é",
    }
    with pytest.raises(ExpressionError, match="not valid JSON"):
        engine.render("{{ '{bad' | fromjson }}", {})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ d | date('yyyy-MM-dd') }}", "2024-03-05"),
        ("{{ d | date(\"yyyy-MM-dd'T'HH:mm:ss\") }}", "2024-03-05T07:08:09"),
        ("{{ d | date('yyyy-MM-dd HH:mm:ss.SSS') }}", "2024-03-05 07:08:09.123"),
        ("{{ d | date('d/M/yy h:mm a') }}", "5/3/24 7:08 AM"),
        ("{{ d | date('EEE, dd MMM yyyy') }}", "Tue, 05 Mar 2024"),
        ("{{ d | date('EEEE MMMM') }}", "Tuesday March"),
        ("{{ d | date('XXX|Z|xxx') }}", "Z|+0000|+00:00"),
        ("{{ d | date(\"'at' HH 'o''clock'\") }}", "at 07 o'clock"),
        ("{{ d | date('%Y/%m/%d') }}", "2024/03/05"),
        ("{{ d | date('HH:mm', timeZone='Europe/Paris') }}", "08:08"),
        ("{{ d | date('HH:mmXXX', timeZone='+05:30') }}", "12:38+05:30"),
        ("{{ d | date('iso') }}", "2024-03-05T07:08:09.123456+00:00"),
        ("{{ d | date('iso_sec') }}", "2024-03-05T07:08:09+00:00"),
        ("{{ d | date('sql') }}", "2024-03-05 07:08:09.123456"),
        ("{{ d | date }}", "2024-03-05T07:08:09.123456+00:00"),
        ("{{ '2024-03-05T07:08:09Z' | date('yyyy-MM-dd HH:mm') }}", "2024-03-05 07:08"),
        ("{{ '2024-03-05' | date('dd.MM.yyyy') }}", "05.03.2024"),
        ("{{ 1709622489 | date('yyyy-MM-dd HH:mm:ss') }}", "2024-03-05 07:08:09"),
        ("{{ 1709622489123 | date('yyyy-MM-dd HH:mm:ss.SSS') }}", "2024-03-05 07:08:09.123"),
        ("{{ '05/03/2024 07:08' | date('yyyy-MM-dd', existingFormat='dd/MM/yyyy HH:mm') }}",
         "2024-03-05"),
    ],
)  # fmt: skip
def test_date_filter(engine: ExpressionEngine, template: str, expected: str) -> None:
    context = {"d": datetime(2024, 3, 5, 7, 8, 9, 123456, tzinfo=UTC)}
    assert engine.render(template, context) == expected


def test_date_filter_errors(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError, match="not an ISO-8601 date"):
        engine.render("{{ 'yesterday' | date('yyyy') }}", {})
    with pytest.raises(ExpressionError, match="unsupported letter 'e'"):
        engine.render("{{ now() | date('ee') }}", {})
    with pytest.raises(ExpressionError, match="unterminated quote"):
        engine.render('{{ now() | date("yyyy \'x") }}', {})


@pytest.mark.parametrize(
    ("amount", "unit", "expected"),
    [
        (30, "SECONDS", datetime(2024, 1, 31, 10, 0, 30, tzinfo=UTC)),
        (-5, "MINUTES", datetime(2024, 1, 31, 9, 55, tzinfo=UTC)),
        (2, "HOURS", datetime(2024, 1, 31, 12, 0, tzinfo=UTC)),
        (-1, "DAYS", datetime(2024, 1, 30, 10, 0, tzinfo=UTC)),
        (1, "WEEKS", datetime(2024, 2, 7, 10, 0, tzinfo=UTC)),
        (1, "days", datetime(2024, 2, 1, 10, 0, tzinfo=UTC)),
        (1, "DAY", datetime(2024, 2, 1, 10, 0, tzinfo=UTC)),
        (500, "MILLIS", datetime(2024, 1, 31, 10, 0, 0, 500000, tzinfo=UTC)),
        (1, "MONTHS", datetime(2024, 2, 29, 10, 0, tzinfo=UTC)),
        (-1, "YEARS", datetime(2023, 1, 31, 10, 0, tzinfo=UTC)),
    ],
)
def test_date_add(engine: ExpressionEngine, amount: int, unit: str, expected: datetime) -> None:
    context = {"d": "2024-01-31T10:00:00Z", "amount": amount, "unit": unit}
    assert engine.evaluate("{{ d | dateAdd(amount, unit) }}", context) == expected


def test_date_add_chains_with_date(engine: ExpressionEngine) -> None:
    template = "{{ d | dateAdd(-1, 'DAYS') | date('yyyy-MM-dd') }}"
    assert engine.render(template, {"d": date(2024, 3, 1)}) == "2024-02-29"
    with pytest.raises(ExpressionError, match="unknown unit 'FORTNIGHTS'"):
        engine.render("{{ now() | dateAdd(1, 'FORTNIGHTS') }}", {})


def test_timestamps(engine: ExpressionEngine) -> None:
    context = {
        "d": datetime(2024, 3, 5, 7, 8, 9, 123456, tzinfo=UTC),
        "s": "2024-03-05T08:08:09+01:00",
    }
    assert engine.evaluate("{{ d | timestamp }}", context) == 1709622489
    assert engine.evaluate("{{ s | timestamp }}", context) == 1709622489
    assert engine.evaluate("{{ d | timestampMilli }}", context) == 1709622489123
    assert engine.evaluate("{{ d | timestampMicro }}", context) == 1709622489123456
    assert engine.evaluate("{{ d | timestampNano }}", context) == 1709622489123456000
    naive = {"d": datetime(1970, 1, 1, 0, 1)}  # naive means UTC
    assert engine.evaluate("{{ d | timestamp }}", naive) == 60
    off = {"d": datetime(1970, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))}
    assert engine.evaluate("{{ d | timestamp }}", off) == 0


def test_jq(engine: ExpressionEngine, ctx: dict[str, Any]) -> None:
    assert engine.evaluate("{{ trigger.value | jq('.total') }}", ctx) == [150]
    assert engine.evaluate("{{ trigger.value | jq('.tags[]') }}", ctx) == ["a", "b"]
    assert engine.evaluate("{{ trigger.value | jq('.total') | first }}", ctx) == 150
    assert engine.evaluate("{{ '{\"a\": {\"b\": 2}}' | jq('.a.b') }}", {}) == [2]
    assert engine.evaluate("{{ {'when': d} | jq('.when') }}", {"d": date(2024, 1, 2)}) == [
        "2024-01-02"
    ]
    with pytest.raises(ExpressionError, match="jq: bad filter"):
        engine.render("{{ trigger.value | jq('.[') }}", ctx)
    with pytest.raises(ExpressionError, match="Cannot index number"):
        engine.render("{{ 5 | jq('.a') }}", {})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ '42' | number }}", 42),
        ("{{ ' -7 ' | number }}", -7),
        ("{{ '1.5' | number }}", 1.5),
        ("{{ '1e3' | number }}", 1000.0),
        ("{{ '42' | number('FLOAT') }}", 42.0),
        ("{{ '4.9' | number('INT') }}", 4),
        ("{{ 3 | number }}", 3),
        ("{{ 42 | string }}", "42"),
        ("{{ true | string }}", "true"),
        ("{{ [1, 'a'] | string }}", '[1,"a"]'),
        ("{{ {'a': 1, 'b': 2} | keys }}", ["a", "b"]),
        ("{{ {'a': 1, 'b': 2} | values }}", [1, 2]),
        ("{{ 'héllo' | base64encode }}", base64.b64encode("héllo".encode()).decode()),
        ("{{ 'aMOpbGxv' | base64decode }}", "héllo"),
        ("{{ 'abc' | b64encode | b64decode }}", "abc"),
        ("{{ '  Héllo, World! ' | slugify }}", "hello-world"),
        ("{{ 'a,b,c' | split(',') }}", ["a", "b", "c"]),
        ("{{ 'a,b,c' | split(',', 2) }}", ["a", "b,c"]),
        ("{{ 'orders.eu' | startsWith('orders') }}", True),
        ("{{ 'orders.eu' | endsWith('.us') }}", False),
        ("{{ 'orders.eu' is startsWith('ord') }}", True),
        ("{{ 'a.b.c' | substringBefore('.') }}", "a"),
        ("{{ 'a.b.c' | substringAfter('.') }}", "b.c"),
        ("{{ 'a.b.c' | substringBeforeLast('.') }}", "a.b"),
        ("{{ 'a.b.c' | substringAfterLast('.') }}", "c"),
        ("{{ 'abc' | substringAfter('x') }}", ""),
        ("{{ 'abc' | substringBefore('x') }}", "abc"),
        ("{{ [1, 2, 3, 4, 5] | chunk(2) }}", [[1, 2], [3, 4], [5]]),
        (
            "{{ 'abc' | sha256 }}",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        ("{{ 'abc' | md5 }}", "900150983cd24fb0d6963f7d28e17f72"),
        ("{{ none is null }}", True),
        ("{{ '' is empty }}", True),
        ("{{ [1] is empty }}", False),
        ("{{ x == null }}", True),
        ("{{ [3, 1, 2] | sort | first }}", 1),
        ("{{ 'A' | lower ~ 'b' | upper }}", "aB"),
    ],
)
def test_filters(engine: ExpressionEngine, template: str, expected: Any) -> None:
    assert engine.evaluate(template, {"x": None}) == expected


def test_base64decode_refuses_garbage(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError, match="not valid base64"):
        engine.render("{{ '***' | base64decode }}", {})


# --------------------------------------------------------------------------- secrets and kv


def test_secret_from_kestra_env_convention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_DB_PASSWORD", base64.b64encode(b"hunter2").decode())
    monkeypatch.setenv("KESTREL_SECRET_API_TOKEN", "tok-123")
    engine = ExpressionEngine()
    assert engine.render("{{ secret('DB_PASSWORD') }}", {}) == "hunter2"
    assert engine.render("{{ secret('api_token') }}", {}) == "tok-123"
    assert default_secret_lookup("NOPE_NOT_SET") is None


def test_secret_not_base64_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_BROKEN", "not*base64")
    with pytest.raises(ExpressionError) as info:
        ExpressionEngine().render("{{ secret('BROKEN') }}", {})
    assert "SECRET_BROKEN" in str(info.value)
    assert "not*base64" not in str(info.value)


def test_unknown_secret_names_it() -> None:
    engine = ExpressionEngine(secret_lookup=lambda name: None)
    with pytest.raises(ExpressionError) as info:
        engine.render("{{ secret('MISSING') }}", {}, task="t", prop="password")
    assert "secret 'MISSING' does not exist" in str(info.value)
    assert (info.value.task, info.value.prop) == ("t", "password")


def test_injected_secret_lookup_and_masking() -> None:
    secrets = {"TOKEN": "s3cr3t-value", "OTHER": 'pa"ss'}
    engine = ExpressionEngine(secret_lookup=secrets.get)
    assert engine.mask("s3cr3t-value") == "s3cr3t-value"  # not handed out yet
    header = engine.render("Bearer {{ secret('TOKEN') }}", {})
    assert header == "Bearer s3cr3t-value"
    assert engine.mask(f"sent {header}") == "sent Bearer ******"
    encoded = base64.b64encode(b"s3cr3t-value").decode()
    assert engine.mask(f"b64 {encoded}") == "b64 ******"
    engine.render("{{ secret('OTHER') }}", {})
    assert engine.mask(json.dumps({"p": 'pa"ss'})) == '{"p": "******"}'
    value = {"s3cr3t-value": ["x s3cr3t-value", ("s3cr3t-value",)], "n": 5}
    assert engine.mask_value(value) == {"******": ["x ******", ("******",)], "n": 5}


def test_error_messages_are_masked() -> None:
    engine = ExpressionEngine(secret_lookup={"PIN": "98765x"}.get, kv_lookup=lambda _k, _n: None)
    with pytest.raises(ExpressionError) as info:
        engine.render("{{ kv(secret('PIN')) }}", {})  # a transform would be refused earlier
    assert "98765x" not in str(info.value)
    assert "******" in str(info.value)


def test_add_secret_and_thread_safety() -> None:
    engine = ExpressionEngine()

    def add(i: int) -> None:
        for j in range(50):
            engine.add_secret(f"secret-{i}-{j}")

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.mask("secret-3-49 and secret-0-0") == "****** and ******"
    engine.add_secret("")
    assert engine.mask("plain") == "plain"


def test_mask_secrets_helper() -> None:
    assert mask_secrets("user=bob pw=abc123", ["abc123", ""]) == "user=bob pw=******"
    assert mask_secrets({"a": ["abc123"], "b": 1}, ["abc123"]) == {"a": ["******"], "b": 1}
    assert mask_secrets("abcd and abc", ["abc", "abcd"]) == "****** and ******"
    assert mask_secrets("nothing", []) == "nothing"


def test_kv_lookup_uses_flow_namespace_by_default() -> None:
    calls: list[tuple[str, str | None]] = []
    store = {("shop", "limit"): 10, ("other", "limit"): 20}

    def lookup(key: str, namespace: str | None, /) -> Any:
        calls.append((key, namespace))
        return store.get((namespace or "", key))

    engine = ExpressionEngine(kv_lookup=lookup)
    context = build_context(flow={"id": "f", "namespace": "shop"}, envs={})
    assert engine.evaluate("{{ kv('limit') }}", context) == 10
    assert engine.evaluate("{{ kv('limit', namespace='other') }}", context) == 20
    assert engine.evaluate("{{ kv('nope', errorOnMissing=false) }}", context) is None
    with pytest.raises(ExpressionError, match="kv key 'nope' does not exist in namespace 'shop'"):
        engine.render("{{ kv('nope') }}", context, task="t", prop="p")
    assert calls[:2] == [("limit", "shop"), ("limit", "other")]


def test_kv_without_store(engine: ExpressionEngine) -> None:
    with pytest.raises(ExpressionError, match=r"kv\(\) needs a store") as info:
        engine.render("{{ kv('x') }}", {}, task="t", prop="p")
    assert info.value.task == "t"


# --------------------------------------------------------------------------- caching


def test_compiled_templates_are_cached(engine: ExpressionEngine) -> None:
    for i in range(3):
        assert engine.render("{{ n }}", {"n": i}) == str(i)
        assert engine.evaluate("{{ n }}", {"n": i}) == i
    assert engine._template.cache_info().hits >= 2
    assert engine._native.cache_info().hits >= 2
    small = ExpressionEngine(cache_size=2)
    for i in range(5):
        small.render(f"{{{{ {i} }}}}", {})
    assert small._template.cache_info().currsize == 2


def test_undefined_inside_filtered_results_is_found(engine: ExpressionEngine) -> None:
    context = {"items": [{"id": 1}, {"other": 2}], "big": {"a": [1, 2]}}
    with pytest.raises(ExpressionError, match="has no attribute 'id'"):
        engine.evaluate("{{ items | map(attribute='id') | list }}", context)
    with pytest.raises(ExpressionError, match="'nope' is undefined"):
        engine.evaluate("{{ [nope] | first }}", context)
    with pytest.raises(ExpressionError, match="'nope' is undefined"):
        engine.evaluate("{{ big.missing | default(nope) }}", context)
    assert engine.evaluate("{{ big.missing | default(big) }}", context) is context["big"]
    assert engine.evaluate("{{ big.a | first }}", context) == 1
