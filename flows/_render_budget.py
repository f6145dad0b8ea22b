"""Budgets for one template render: time and text size, so no expression can freeze a process.

The sandbox already refuses huge ``*`` and ``**`` results and ranges. This module adds:

- a **time budget** per render (`KESTREL_RENDER_TIMEOUT_S`, default 2 s): templates with
  statements (``{% for %}``, macros...) run under a line tracer limited to the template's
  own code, which raises once the deadline has passed, so nested loops of 10⁹ iterations
  end in an `ExpressionError` instead of holding the event loop for minutes;
- a **text budget** per render (`KESTREL_RENDER_MAX_CHARS`, default 10,000,000): padding and
  formatting that would build long strings (``'a'.ljust(2000000000)``, ``center``,
  ``'%0300000000d' % 1``, ``'{:>999999999}'.format(1)``, the ``center``/``indent``/``format``/
  ``wordwrap``/``truncate`` filters) is refused before any memory is taken, counting every
  such call of the render together, and the rendered text itself is checked at the end.

`ExpressionEngine` calls this module through a narrow hook: `rendering` around a render,
`check_call` from the sandbox's ``call``, `check_binop` for ``%``, and `guard_filters`.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from jinja2.exceptions import SecurityError

TEMPLATE_FILENAME = "<template>"
"""The file name Jinja gives code compiled from a string."""


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


RENDER_TIMEOUT_S = _env_number("KESTREL_RENDER_TIMEOUT_S", 2.0)
"""Seconds one render may take (env ``KESTREL_RENDER_TIMEOUT_S``)."""
MAX_CHARS = int(_env_number("KESTREL_RENDER_MAX_CHARS", 10_000_000))
"""Characters one render may build by padding/formatting, and may output."""

_CHECK_EVERY = 1024  # trace events between two clock reads


class RenderBudgetError(SecurityError):
    """A render went over its time or text budget."""


@dataclass
class _Budget:
    deadline: float
    chars: int = 0

    def spend(self, chars: int, what: str) -> None:
        self.chars += max(0, chars)
        if self.chars > MAX_CHARS:
            raise RenderBudgetError(f"{what} would build more than {MAX_CHARS:,} characters")


_current: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "kestrel_render_budget", default=None
)


def _spend(chars: int, what: str) -> None:
    budget = _current.get()
    if budget is None:
        if chars > MAX_CHARS:
            raise RenderBudgetError(f"{what} would build more than {MAX_CHARS:,} characters")
        return
    budget.spend(chars, what)


@contextlib.contextmanager
def rendering(source: str) -> Iterator[None]:
    """Run one render under the time and text budgets.

    Raises:
        RenderBudgetError: The render took longer than `RENDER_TIMEOUT_S`.
    """
    if _current.get() is not None:  # a render inside a render: the outer budget holds
        yield
        return
    budget = _Budget(deadline=time.monotonic() + RENDER_TIMEOUT_S)
    token = _current.set(budget)
    try:
        if "{%" in source:
            with _traced(budget.deadline):
                yield
        else:
            yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def _traced(deadline: float) -> Iterator[None]:
    events = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal events
        events += 1
        if events % _CHECK_EVERY == 0 and time.monotonic() > deadline:
            raise RenderBudgetError(f"rendering took longer than {RENDER_TIMEOUT_S:g} s")
        return local

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == TEMPLATE_FILENAME else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        yield
    finally:
        sys.settrace(previous)


def check_output(text: str) -> str:
    """The rendered text, unless it is over the text budget."""
    if len(text) > MAX_CHARS:
        raise RenderBudgetError(f"the rendered text is longer than {MAX_CHARS:,} characters")
    return text


# ---- calls that build long strings -----------------------------------------------------

_PADDING = frozenset({"ljust", "rjust", "center", "zfill"})
_FORMAT_WIDTHS = re.compile(r"\{[^{}]*?:[^{}]*?(\d+)")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def check_call(func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a call (from a template) that would build a string over the text budget."""
    owner = getattr(func, "__self__", None)
    name = getattr(func, "__name__", "")
    if not isinstance(owner, str | bytes):
        return
    if name in _PADDING and args:
        _spend(_int(args[0]), f"'{name}'")
    elif name == "expandtabs":
        tab = _int(args[0]) if args else _int(kwargs.get("tabsize", 8))
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        _spend(tab * tabs, "'expandtabs'")


def _format_width(pattern: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    total = sum(int(w) for w in _FORMAT_WIDTHS.findall(pattern))
    if re.search(r":[^{}]*\{", pattern):  # a width from the arguments: {:>{}}
        values = [*args, *kwargs.values()]
        if len(values) == 1 and isinstance(values[0], Mapping):  # format_map
            values = list(values[0].values())
        total += sum(_int(v) for v in values)
    return total


def guard_str_format(value: Any, wrapped: Callable[..., str] | None) -> Callable[..., str] | None:
    """``str.format`` as the sandbox wraps it, refusing widths over the text budget."""
    if wrapped is None:
        return None
    pattern = getattr(value, "__self__", "")

    def checked(*args: Any, **kwargs: Any) -> str:
        if isinstance(pattern, str):
            _spend(_format_width(pattern, args, kwargs), "'format'")
        return wrapped(*args, **kwargs)

    return checked


def _percent_width(pattern: str, values: Any) -> int:
    total = 0
    stars = [v for v in values if isinstance(v, int)] if isinstance(values, tuple) else []
    for width, precision in _PERCENT_SPEC.findall(pattern):
        for part in (width, precision):
            if part == "*":
                total += max((_int(v) for v in stars), default=0)
            elif part:
                total += int(part)
    return total


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``'%0300000000d' % 1`` and the like (``%`` formatting with huge widths)."""
    if operator == "%" and isinstance(left, str):
        _spend(_percent_width(left, right), "'%' formatting")


def guard_filters(filters: dict[str, Callable[..., Any]]) -> None:
    """Wrap the Jinja filters that pad or format so they respect the text budget."""

    def width_at(name: str, index: int, keyword: str) -> None:
        original = filters.get(name)
        if original is None:
            return

        def guarded(*args: Any, **kwargs: Any) -> Any:
            width = args[index] if len(args) > index else kwargs.get(keyword, 0)
            _spend(_int(width), f"the '{name}' filter")
            return original(*args, **kwargs)

        _copy_flags(original, guarded)
        filters[name] = guarded

    width_at("center", 1, "width")
    width_at("indent", 1, "width")
    width_at("wordwrap", 2, "width")
    width_at("truncate", 2, "length")
    original_format = filters.get("format")
    if original_format is not None:

        def guarded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(value, str):
                _spend(_percent_width(value, tuple(args)), "the 'format' filter")
            return original_format(value, *args, **kwargs)

        _copy_flags(original_format, guarded_format)
        filters["format"] = guarded_format


def _copy_flags(original: Callable[..., Any], wrapper: Callable[..., Any]) -> None:
    """Keep Jinja's ``pass_context``/``pass_environment`` marks on the wrapper."""
    mark = getattr(original, "jinja_pass_arg", None)
    if mark is not None:
        wrapper.jinja_pass_arg = mark  # type: ignore[attr-defined]
