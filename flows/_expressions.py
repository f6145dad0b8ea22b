"""The expression engine: Kestra-style ``{{ ... }}`` templates, rendered by sandboxed Jinja.

Templates come from flows; the values they read (trigger payloads, inputs, outputs) are data
and are never rendered themselves, so an event carrying ``{{ 7*7 }}`` stays that text.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import functools
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Number
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes, pass_context
from jinja2.environment import Template, TemplateExpression
from jinja2.exceptions import SecurityError, TemplateAssertionError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from . import _expression_functions as fn
from . import _pebble_functions as pf
from . import _render_budget as _budget
from . import _secret_guard
from ._errors import ExpressionError
from ._expression_files import FILE_FUNCTION_NAMES, file_functions
from ._pebble import HAS, LOOKUP, PebbleParser, has_path, pebble_source, safe_lookup
from ._render_cost import is_linear, linear_value
from ._storage import FileReader

if TYPE_CHECKING:
    from ._model import Flow

__all__ = [
    "KV_LOOKUP",
    "MAX_POWER_BITS",
    "MAX_SEQUENCE",
    "ExpressionEngine",
    "KvLookup",
    "SecretLookup",
    "build_context",
    "default_secret_lookup",
    "environment_variables",
    "global_variables",
    "is_truthy",
    "mask_secrets",
]

mask_secrets = fn.mask_secrets

MAX_SEQUENCE = 10_000_000
"""Longest string or list that ``*`` may build inside a template (items or characters)."""

MAX_POWER_BITS = 100_000
"""Largest integer (in bits) that ``**`` may build inside a template."""

KV_LOOKUP = "__kv"
"""Context key under which a runtime may put its own `KvLookup` (read before the engine's)."""

_EXCERPT = 200
_FALSE_TEXT = frozenset({"", "false", "0", "null"})


class KvLookup(Protocol):
    """Reads a key from the KV store for ``kv(key, namespace)``.

    Returns None when the key does not exist. ``namespace`` is the one given in the
    expression, else the flow's namespace from the context, else None.
    """

    def __call__(self, key: str, namespace: str | None, /) -> Any:
        """Return the stored value, or None when there is none."""


class SecretLookup(Protocol):
    """Reads a secret by name for ``secret(NAME)``; returns None when it does not exist."""

    def __call__(self, name: str, /) -> str | None:
        """Return the secret's value, or None."""


def default_secret_lookup(name: str) -> str | None:
    """Kestra OSS's convention: env var ``SECRET_<NAME>`` holds the value in base64.

    Falls back to ``KESTREL_SECRET_<NAME>`` holding the plain value. Names are tried as
    given, then upper-cased.

    Raises:
        ExpressionError: When ``SECRET_<NAME>`` is not valid base64 (the value is not shown).
    """
    for candidate in dict.fromkeys((name, name.upper())):
        encoded = os.environ.get(f"SECRET_{candidate}")
        if encoded is not None:
            try:
                return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                raise ExpressionError(
                    f"secret '{name}': env var SECRET_{candidate} is not base64-encoded UTF-8"
                ) from None
        plain = os.environ.get(f"KESTREL_SECRET_{candidate}")
        if plain is not None:
            return plain
    return None


def _no_kv_store(key: str, namespace: str | None, /) -> Any:
    raise ExpressionError("kv() needs a store")


def is_truthy(value: Any) -> bool:
    """Kestra's truthiness, for the conditions of If, Fail, LoopUntil and ``runIf``.

    False: None, False, 0, 0.0, empty text/list/map, and the text ``false``, ``0``,
    ``null`` (case-insensitive, surrounding whitespace ignored). Everything else is true.
    """
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    if isinstance(value, Number):
        return bool(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset | bytes):
        return len(value) > 0
    return True


# --------------------------------------------------------------------------- context


def _flow_variables(flow: Any) -> dict[str, Any]:
    if isinstance(flow, Mapping):
        out = dict(flow)
        out.setdefault("revision", None)
        return out
    return {
        "id": getattr(flow, "id", None),
        "namespace": getattr(flow, "namespace", None),
        "revision": getattr(flow, "revision", None),
    }


def _labels_dict(labels: Any) -> dict[str, Any]:
    if isinstance(labels, Mapping):
        return dict(labels)
    out: dict[str, Any] = {}
    for label in labels or ():
        if isinstance(label, Mapping):
            out[str(label["key"])] = label["value"]
        else:
            out[str(label.key)] = label.value
    return out


def _pick(source: Any, fields: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """Kestra's names for ``source`` (a mapping or an object), accepting snake_case aliases."""
    out: dict[str, Any] = dict(source) if isinstance(source, Mapping) else {}
    for name, aliases in fields.items():
        value = None
        for alias in aliases:
            if isinstance(source, Mapping):
                if alias in source:
                    value = source[alias]
                    break
            elif hasattr(source, alias):
                value = getattr(source, alias)
                break
        for alias in aliases[1:]:
            out.pop(alias, None)
        out[name] = value
    return out


_EXECUTION_FIELDS = {
    "id": ("id",),
    "startDate": ("startDate", "start_date"),
    "state": ("state",),
    "originalId": ("originalId", "original_id"),
}
_TASKRUN_FIELDS = {
    "id": ("id",),
    "value": ("value",),
    "iteration": ("iteration",),
    "attemptsCount": ("attemptsCount", "attempts_count"),
}


def environment_variables() -> dict[str, str]:
    """Kestra's ``envs``: process env vars named ``ENV_*``, prefix stripped, keys lower-cased."""
    return {k[4:].lower(): v for k, v in os.environ.items() if k.startswith("ENV_") and len(k) > 4}


def global_variables() -> dict[str, Any]:
    """Kestra's ``globals``: the JSON object in env var ``KESTREL_GLOBALS`` (empty without).

    Raises:
        ExpressionError: ``KESTREL_GLOBALS`` is not a JSON object.
    """
    raw = os.environ.get("KESTREL_GLOBALS")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"KESTREL_GLOBALS is not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ExpressionError("KESTREL_GLOBALS must be a JSON object")
    return value


def build_context(
    *,
    flow: Flow | Mapping[str, Any] | None = None,
    execution: Mapping[str, Any] | Any | None = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
    labels: Mapping[str, Any] | None = None,
    trigger: Mapping[str, Any] | None = None,
    taskrun: Mapping[str, Any] | Any | None = None,
    parent: Mapping[str, Any] | None = None,
    envs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build a rendering context with Kestra's variable names.

    ``flow.{id,namespace,revision}``, ``execution.{id,startDate,state,originalId}``,
    ``inputs``, ``outputs``, ``vars``, ``labels``, ``trigger``,
    ``taskrun.{id,value,iteration,attemptsCount}``, ``parent`` and ``envs``.

    ``inputs``, ``outputs``, ``vars``, ``labels`` and ``envs`` are always present (empty
    when unknown); ``flow``, ``execution``, ``trigger``, ``taskrun`` and ``parent`` only when
    given, so ``{{ trigger.value }}`` in a manual execution fails with "'trigger' is
    undefined" and ``{% if trigger is defined %}`` works.

    Args:
        flow: A `flows.Flow` or a mapping; its ``variables`` and ``labels`` are the
            defaults of ``vars`` and ``labels``.
        execution: A mapping or object; snake_case names (``start_date``) are accepted.
        inputs: Validated inputs.
        outputs: Task outputs by task id.
        variables: Flow variables (``vars``); defaults to the flow's.
        labels: Execution labels; defaults to the flow's.
        trigger: The trigger variables (see the design's trigger table).
        taskrun: The current task run, a mapping or object.
        parent: The parent ``taskrun`` inside a flowable's children.
        envs: ``envs``; defaults to `environment_variables()`.

    Returns:
        A new dict; the given mappings are shared, not copied.
    """
    context: dict[str, Any] = {}
    flow_vars: Mapping[str, Any] = {}
    flow_labels: Any = None
    if flow is not None:
        context["flow"] = _flow_variables(flow)
        if isinstance(flow, Mapping):
            flow_vars = flow.get("variables") or {}
            flow_labels = flow.get("labels")
        else:
            flow_vars = getattr(flow, "variables", None) or {}
            flow_labels = getattr(flow, "labels", None)
    if execution is not None:
        context["execution"] = _pick(execution, _EXECUTION_FIELDS)
    context["inputs"] = inputs if inputs is not None else {}
    context["outputs"] = outputs if outputs is not None else {}
    context["vars"] = variables if variables is not None else flow_vars
    context["labels"] = labels if labels is not None else _labels_dict(flow_labels)
    if trigger is not None:
        context["trigger"] = trigger
    if taskrun is not None:
        context["taskrun"] = _pick(taskrun, _TASKRUN_FIELDS)
    if parent is not None:
        context["parent"] = parent
    context["envs"] = envs if envs is not None else environment_variables()
    return context


# --------------------------------------------------------------------------- sandbox


class _Undefined(StrictUndefined):
    """StrictUndefined that suggests the closest existing key of a mapping."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        message: str = super()._undefined_message
        obj, name = self._undefined_obj, self._undefined_name
        if self._undefined_hint is None and isinstance(obj, Mapping) and isinstance(name, str):
            names = [k for k in obj if isinstance(k, str)]
            message += _did_you_mean(name, names)
        return message


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, stricter and with Kestra's data access rules.

    - ``a.b`` on a mapping reads the key ``b`` first (so ``inputs.items`` is the input,
      not ``dict.items``), then falls back to Jinja's attribute-then-item rule.
    - Unsafe attribute access raises at once instead of yielding an undefined value.
    - ``*`` and ``**`` refuse results beyond `MAX_SEQUENCE` / `MAX_POWER_BITS`.
    """

    intercepted_binops = frozenset({"*", "**", "%"})

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``__obj`` (sandboxed) unless it would build a string over the text budget."""
        _budget.check_call(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed ``str.format``, refusing widths over the text budget."""
        return _budget.guard_str_format(value, super().wrap_str_format(value))

    def preprocess(self, source: str, name: str | None = None, filename: str | None = None) -> str:
        """Rewrite Pebble's ``?:`` and ``??`` for `PebbleParser` (see `flows._pebble`)."""
        return pebble_source(super().preprocess(source, name, filename))

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return PebbleParser(self, source, name, filename).parse()

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Read ``obj.attribute``: a mapping's key first, then Jinja's sandboxed rules."""
        _secret_guard.refuse_access(obj, f"the attribute {attribute!r}")
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """Read ``obj[argument]`` (sandboxed); never an item or slice of a secret."""
        _secret_guard.refuse_access(obj, "an item or slice")
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        """Refuse access to an unsafe attribute, immediately."""
        kind = "an undefined" if isinstance(obj, Undefined) else f"a {type(obj).__name__!r}"
        raise SecurityError(f"access to attribute {attribute!r} of {kind} value is unsafe")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply ``*`` or ``**`` unless the result would be unreasonably large."""
        if operator == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
        elif operator == "**":
            _check_power(left, right)
        _budget.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)


def _check_repeat(sequence: Any, times: Any) -> None:
    if (
        isinstance(sequence, str | list | tuple)
        and isinstance(times, int)
        and len(sequence) * times > MAX_SEQUENCE
    ):
        raise SecurityError(f"'*' would build a sequence longer than {MAX_SEQUENCE}")


def _check_power(base: Any, exponent: Any) -> None:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base).bit_length() * exponent > MAX_POWER_BITS
    ):
        raise SecurityError(f"'**' would build a number larger than {MAX_POWER_BITS} bits")


@dataclass(frozen=True, slots=True)
class _Native:
    """A template that is exactly one ``{{ expression }}``, compiled to return its value."""

    expression: TemplateExpression
    plain_lookup: bool


_PASS_THROUGH_FILTERS = frozenset(
    {"default", "d", "first", "last", "tojson", "json", "toJson", "string", "length", "count",
     "fromjson", "fromJson", "jq", "number", "keys", "values", "date", "dateAdd", "timestamp",
     "lower", "upper", "trim"}
)  # fmt: skip
"""Filters whose result holds no undefined value when their arguments hold none."""


def _is_plain_lookup(node: nodes.Node) -> bool:
    """True when the value can only be context data, a fresh scalar or undefined itself.

    Such a result needs no search for undefined values nested inside it (which would cost
    time proportional to the size of, say, a whole trigger payload).
    """
    if isinstance(node, nodes.Name | nodes.Const):
        return True
    if isinstance(node, nodes.Getattr):
        return _is_plain_lookup(node.node)
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Const) and _is_plain_lookup(node.node)
    if isinstance(node, nodes.Filter):
        return (
            node.name in _PASS_THROUGH_FILTERS
            and node.node is not None
            and node.dyn_args is None
            and node.dyn_kwargs is None
            and all(_is_plain_lookup(n) for n in [node.node, *node.args])
            and all(_is_plain_lookup(k.value) for k in node.kwargs)
        )
    return False


def _texts(value: Any) -> set[str]:
    """Every string inside a value (mappings and lists, recursively)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _has_markup(text: str) -> bool:
    return "{" in text and ("{{" in text or "{%" in text or "{#" in text)


def _fail_if_undefined(value: Any) -> None:
    """Raise the error of any undefined value inside a (freshly built) result."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, Undefined):
            item._fail_with_undefined_error()
        if isinstance(item, list | tuple | set | frozenset | dict) and id(item) not in seen:
            seen.add(id(item))
            stack.extend(item.values() if isinstance(item, dict) else item)


# --------------------------------------------------------------------------- errors


_NO_ATTRIBUTE = re.compile(
    r"""^(?P<what>'[^']*'|"[^"]*"|\w+ object) has no (?:attribute|element) (?P<name>.*)$"""
)
_IS_UNDEFINED = re.compile(r"""^'(?P<name>[^']+)' is undefined$""")
_PATH = r"[A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*|\s*\[[^\[\]]*\])*?"


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _undefined_message(message: str, source: str, names: list[str]) -> str:
    """Name the variable path instead of its type: ``'vars' has no attribute 'x'``."""
    match = _IS_UNDEFINED.match(message)
    if match:
        return message + _did_you_mean(match["name"], names)
    match = _NO_ATTRIBUTE.match(message)
    if not match:
        return message
    name = match["name"].split(" (did you mean")[0]
    if name[:1] in "'\"":
        name = re.escape(name[1:-1])
        access = rf"(?:\.\s*{name}\b|\[\s*(?P<q>['\"]){name}(?P=q)\s*\])"
    else:
        access = rf"\[\s*{re.escape(name)}\s*\]"
    found = re.finditer(rf"(?P<path>{_PATH})\s*{access}", source)
    paths = {re.sub(r"\s+", "", m["path"]) for m in found}
    if len(paths) != 1:
        return message
    return f"'{paths.pop()}'" + message[match.end("what") :]


def _template_line(exc: BaseException) -> int:
    tb: TracebackType | None = exc.__traceback__
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _excerpt(source: str, line: int) -> str:
    """The expression to show in an error: all of it when short, else the failing line."""
    if len(source) <= _EXCERPT and "\n" not in source:
        return source
    lines = source.splitlines()
    if 1 <= line <= len(lines):
        text = lines[line - 1].strip()
        shown = text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"
        return f"{shown} (line {line})"
    return source if len(source) <= _EXCERPT else source[: _EXCERPT - 1] + "…"


def _describe(exc: BaseException, source: str, names: list[str]) -> str:
    if isinstance(exc, ExpressionError):
        return str(exc)
    if isinstance(exc, TemplateAssertionError):
        return str(exc.message)
    if isinstance(exc, TemplateSyntaxError):
        return f"syntax error: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {exc}"
    if isinstance(exc, UndefinedError):
        return _undefined_message(str(exc), source, names)
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- engine


@functools.cache
def _parse_only() -> _Sandbox:
    env = _Sandbox(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)
    return env


def parse_template(source: str) -> tuple[nodes.Template, frozenset[str]]:
    """The syntax tree of a template (Pebble and Jinja spellings) and the known globals.

    Raises:
        jinja2.TemplateSyntaxError: When the template does not parse.
    """
    return _parse_only().parse(source), _GLOBAL_NAMES


_GLOBAL_NAMES = frozenset(
    {"now", "uuid", "secret", "kv", "fromJson", "null", "render", "range", "dict", "namespace",
     "true", "false", "none", "True", "False", "None", "loop", "caller", "varargs", "kwargs",
     *pf.GLOBALS, LOOKUP, HAS, *FILE_FUNCTION_NAMES}
)  # fmt: skip


class ExpressionEngine:
    """Renders Kestra-style templates in a Jinja sandbox; one per process is enough.

    Thread-safe. Compiled templates are kept in a bounded LRU cache; a string without
    ``{{``, ``{%`` or ``{#`` is returned as is without touching Jinja.

    Every secret handed out by ``secret()`` (or passed to `add_secret`) is remembered so
    `mask` and `mask_value` can hide it in logs and stored outputs.

    Args:
        kv_lookup: Reads ``kv(key, namespace)``; without one, ``kv()`` fails.
        secret_lookup: Reads ``secret(NAME)``; defaults to `default_secret_lookup`
            (env var ``SECRET_<NAME>`` in base64, else ``KESTREL_SECRET_<NAME>``).
        cache_size: How many compiled templates to keep.
        file_reader: Reads stored files for ``read()``, ``fileSize()``, ``fileExists()``;
            without one, those fail.
    """

    def __init__(
        self,
        kv_lookup: KvLookup | None = None,
        secret_lookup: SecretLookup | None = None,
        *,
        cache_size: int = 2048,
        file_reader: FileReader | None = None,
    ) -> None:
        self._file_reader = file_reader
        self._kv_lookup: KvLookup = kv_lookup or _no_kv_store
        self._secret_lookup: SecretLookup = secret_lookup or default_secret_lookup
        self._secrets: set[str] = set()
        self._secrets_lock = threading.Lock()
        self._mask: re.Pattern[str] | None = None
        self._env = self._make_environment()
        self._template = functools.lru_cache(maxsize=cache_size)(self._compile_template)
        self._native = functools.lru_cache(maxsize=cache_size)(self._compile_native)
        self._linear = functools.lru_cache(maxsize=cache_size)(self._compile_linear)

    def _make_environment(self) -> _Sandbox:
        env = _Sandbox(
            undefined=_Undefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=fn.to_text,
            auto_reload=False,
        )
        for name in ("lipsum", "cycler", "joiner"):
            env.globals.pop(name, None)
        env.globals.update(
            now=fn.now,
            uuid=fn.new_uuid,
            secret=self._secret,
            kv=self._kv,
            fromJson=fn.from_json,
            null=None,
            render=self._render_function,
        )
        env.globals.update(file_functions(self._file_reader))
        env.globals.update(pf.GLOBALS)
        env.globals[LOOKUP] = safe_lookup
        env.globals[HAS] = has_path
        env.filters.update(fn.FILTERS)
        env.filters.update(pf.FILTERS)
        _budget.guard_filters(env.filters)
        _secret_guard.guard(env.filters, env.globals)
        env.tests.update(fn.TESTS)
        env.tests.update(pf.TESTS)
        return env

    @pass_context
    def _render_function(self, context: Context, value: Any, recursive: bool = True) -> Any:
        """Kestra's ``render(x)``: render a template the flow keeps in its ``vars``.

        Only text found among the flow's variables is rendered: trigger payloads, inputs
        and outputs are data and stay data, whatever they contain. ``recursive``
        re-renders (up to 10 times) while the result is again one of the flow's variables.

        Raises:
            ExpressionError: `value` is text that is not one of the flow's variables.
        """
        if not isinstance(value, str) or not _has_markup(value):
            return value
        authored = _texts(context.get("vars"))
        if value not in authored:
            raise ExpressionError(
                "render() renders the flow's own variables only; event data, inputs and "
                "outputs are never templates"
            )
        variables = context.get_all()
        for _ in range(10 if recursive else 1):
            value = self._env.from_string(value).render(variables)
            if value not in authored or not _has_markup(value):
                break  # only the flow's own text is rendered again, never data
        return value

    # ---- functions with engine state

    def _secret(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise ExpressionError("secret() needs a secret name")
        value = self._secret_lookup(name)
        if value is None:
            raise ExpressionError(f"secret '{name}' does not exist")
        self.add_secret(value)
        return value

    @pass_context
    def _kv(
        self,
        context: Context,
        key: str,
        namespace: str | None = None,
        errorOnMissing: bool = True,
    ) -> Any:
        if namespace is None:
            flow = context.get("flow")
            if isinstance(flow, Mapping) and isinstance(flow.get("namespace"), str):
                namespace = flow["namespace"]
        per_run = context.get(KV_LOOKUP)
        value = per_run(key, namespace) if callable(per_run) else self._kv_lookup(key, namespace)
        if value is None and errorOnMissing:
            where = f" in namespace '{namespace}'" if namespace else ""
            raise ExpressionError(f"kv key '{key}' does not exist{where}")
        return value

    # ---- compilation

    def _compile_template(self, source: str) -> Template:
        return self._env.from_string(source)

    def _compile_native(self, source: str) -> _Native | None:
        tree = self._env.parse(source)
        body = tree.body
        if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
            return None
        expr = body[0].nodes[0]
        if isinstance(expr, nodes.TemplateData):
            return None
        assign = nodes.Assign(nodes.Name("result", "store"), expr, lineno=expr.lineno)
        program = nodes.Template([assign], lineno=1)
        program.set_environment(self._env)
        template = self._env.from_string(program)
        return _Native(TemplateExpression(template, False), _is_plain_lookup(expr))

    def _compile_linear(self, source: str) -> bool:
        try:
            return is_linear(self._env.parse(source))
        except Exception:
            return True  # it does not parse: rendering it fails at once

    # ---- rendering

    def is_linear(self, value: Any) -> bool:
        """Whether every template inside `value` renders in time linear in its data.

        Such templates (lookups, literals, comparisons, a short list of filters: see
        `flows/_render_cost.py`) cannot loop, so a runtime may render them on an event
        loop that serves other work; the others may take up to the render time budget.
        """
        return linear_value(value, lambda text: not _has_markup(text) or self._linear(text))

    def render(
        self, template: str, context: Mapping[str, Any], *, task: str = "", prop: str = ""
    ) -> str:
        """Render a template to text.

        Values are written with `fn.to_text`: ``None`` as empty text, booleans as
        ``true``/``false``, datetimes as ISO-8601, maps and lists as compact JSON.

        Args:
            template: The template text; returned unchanged when it has no Jinja markup.
            context: The variables, usually from `build_context`.
            task: The task id, for error messages.
            prop: The property name, for error messages.

        Raises:
            ExpressionError: On any syntax error, undefined variable, sandbox violation or
                failing filter; the message names the task, property and expression.
        """
        if not _has_markup(template):
            return template
        try:
            with _budget.rendering(template):
                return _budget.check_output(self._template(template).render(context))
        except Exception as exc:
            raise self._error(exc, template, context, task, prop) from None

    def evaluate(
        self, expression: str, context: Mapping[str, Any], *, task: str = "", prop: str = ""
    ) -> Any:
        """Evaluate a template, keeping the native value of a single expression.

        ``"{{ inputs.items }}"`` gives the list itself, ``"{{ x > 3 }}"`` a bool,
        ``"{{ now() }}"`` a datetime. Lazy results (``range``, ``map``, generators) become
        lists. Anything else, including text around the braces (``"id-{{ x }}"``) or a
        trailing newline, is rendered to text as by `render`; text without markup is
        returned unchanged.

        The value may be shared with the context: treat it as read-only.

        Raises:
            ExpressionError: As `render`.
        """
        if not _has_markup(expression):
            return expression
        try:
            with _budget.rendering(expression):
                return self._evaluate(expression, context)
        except Exception as exc:
            raise self._error(exc, expression, context, task, prop) from None

    def _evaluate(self, expression: str, context: Mapping[str, Any]) -> Any:
        native = self._native(expression)
        if native is None:
            return _budget.check_output(self._template(expression).render(context))
        result = native.expression(context)
        if isinstance(result, Undefined):
            result._fail_with_undefined_error()
        result = fn.materialize(result)
        if not native.plain_lookup:
            _fail_if_undefined(result)
        return result

    def evaluate_condition(
        self, expression: str, context: Mapping[str, Any], *, task: str = "", prop: str = ""
    ) -> bool:
        """Evaluate a condition (If, runIf, LoopUntil, ...) with Kestra's truthiness.

        Raises:
            ExpressionError: As `render`.
        """
        return is_truthy(self.evaluate(expression, context, task=task, prop=prop))

    def render_value(
        self, value: Any, context: Mapping[str, Any], *, task: str = "", prop: str = ""
    ) -> Any:
        """Render every string inside a property value, recursively.

        Mappings (keys and values), lists and tuples are rebuilt with their strings rendered;
        other scalars are returned untouched. Each string is evaluated as by `evaluate`: one
        that is exactly ``{{ expression }}`` keeps the expression's native value
        (``values: "{{ inputs.items }}"`` gives a list, ``"{{ 42 }}"`` an int), every other
        string gives text. Mapping keys always give text. Rendered results are never
        rendered again. Errors name the property path, e.g. ``headers.X-Id`` or ``args[2]``.

        Raises:
            ExpressionError: As `render`.
        """
        if isinstance(value, str):
            return self.evaluate(value, context, task=task, prop=prop)
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                path = f"{prop}.{key}" if prop else str(key)
                new_key = (
                    self.render(key, context, task=task, prop=path) if isinstance(key, str) else key
                )
                out[new_key] = self.render_value(item, context, task=task, prop=path)
            return out
        if isinstance(value, list | tuple):
            items = [
                self.render_value(item, context, task=task, prop=f"{prop}[{i}]")
                for i, item in enumerate(value)
            ]
            return items if isinstance(value, list) else tuple(items)
        return value

    def _error(
        self,
        exc: BaseException,
        source: str,
        context: Mapping[str, Any],
        task: str,
        prop: str,
    ) -> ExpressionError:
        if isinstance(exc, ExpressionError) and (exc.expression or exc.task or exc.prop):
            return exc
        names = [*context, *self._env.globals]
        message = self.mask(_describe(exc, source, names))
        syntax = isinstance(exc, TemplateSyntaxError)
        line = (getattr(exc, "lineno", 0) or 0) if syntax else _template_line(exc)
        return ExpressionError(message, expression=_excerpt(source, line), task=task, prop=prop)

    # ---- secrets

    def add_secret(self, value: str) -> None:
        """Remember a secret value (e.g. a SECRET input) so that it is masked."""
        if not value:
            return
        forms = fn.secret_forms(value)
        with self._secrets_lock:
            if forms <= self._secrets:
                return
            self._secrets |= forms
            self._mask = fn.mask_pattern(self._secrets)

    def mask(self, text: str) -> str:
        """Replace every remembered secret (and its base64/JSON/URL forms) with ``******``."""
        pattern = self._mask
        return text if pattern is None else pattern.sub(fn.MASK, text)

    def mask_value(self, value: Any) -> Any:
        """`mask` every string in a value: mappings (keys too), lists and tuples, recursively."""
        return fn.mask_with(self._mask, value)
