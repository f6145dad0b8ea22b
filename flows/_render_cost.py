"""Which templates render in time bounded by their data: the ones a runtime may render inline.

A template qualifies when it is text and ``{{ }}`` expressions made only of variable
lookups, literals, comparisons, boolean logic, arithmetic other than ``**``, and filters
and tests from short lists whose cost is linear in their input (``tojson``, ``default``,
``lower``, ``length``, ``is defined`` ...). Anything else may loop: statements
(``{% for %}``, macros, ``{% set %}``), calls (``range()``, ``render()``, ``kv()``,
methods such as ``'a'.ljust(n)``), ``**`` and every other filter or test (``jq``,
regular expressions, ``map``/``select`` over attributes ...). A runtime renders those
off its event loop (see `actors/_templates.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import nodes

from ._pebble import HAS, LOOKUP

LINEAR_FILTERS = frozenset(
    {"default", "d", "first", "last", "tojson", "json", "toJson", "string", "length",
     "count", "fromjson", "fromJson", "number", "int", "float", "abs", "round", "keys",
     "values", "date", "dateAdd", "timestamp", "lower", "upper", "trim", "capitalize",
     "title", "escape", "e", "urlencode", "b64encode", "base64encode", "base64decode",
     "toString", "bool", "list", "sum", "min", "max", "reverse", "join",
     "startsWith", "endsWith", "abbreviate", "slugify"}
)  # fmt: skip
"""Filters whose cost is linear in their input (and the values of their arguments)."""

LINEAR_TESTS = frozenset(
    {"defined", "undefined", "none", "null", "empty", "number", "string", "mapping", "map",
     "sequence", "iterable", "boolean", "true", "false", "integer", "float", "even", "odd",
     "divisibleby", "eq", "ne", "lt", "le", "gt", "ge", "equalto", "sameas", "in",
     "startsWith", "endsWith", "lower", "upper", "json"}
)  # fmt: skip
"""Tests whose cost is linear in their input."""

_PLAIN = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Compare, nodes.Operand, nodes.And,
    nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.CondExpr, nodes.Concat, nodes.List,
    nodes.Tuple, nodes.Dict, nodes.Pair, nodes.Keyword, nodes.Add, nodes.Sub, nodes.Mul,
    nodes.Div, nodes.FloorDiv, nodes.Mod,
)  # fmt: skip
_PEBBLE_LOOKUPS = frozenset({HAS, LOOKUP})  # ``a.b is defined``, ``a?.b``: path reads


def is_linear(tree: nodes.Template) -> bool:
    """Whether rendering `tree` costs time linear in its data (see the module docstring)."""
    return all(_linear(node) for node in tree.find_all(nodes.Node))


def linear_value(value: Any, linear_text: Callable[[str], bool]) -> bool:
    """Whether every string inside `value` is linear by `linear_text`.

    Mappings (keys too), lists and tuples are searched; other values are linear.
    """
    if isinstance(value, str):
        return linear_text(value)
    if isinstance(value, Mapping):
        return all(
            linear_value(k, linear_text) and linear_value(v, linear_text) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return all(linear_value(item, linear_text) for item in value)
    return True


def _linear(node: nodes.Node) -> bool:
    if isinstance(node, _PLAIN):
        return True
    if isinstance(node, nodes.Filter):
        return node.name in LINEAR_FILTERS and node.dyn_args is None and node.dyn_kwargs is None
    if isinstance(node, nodes.Test):
        return node.name in LINEAR_TESTS and node.dyn_args is None and node.dyn_kwargs is None
    if isinstance(node, nodes.Call):
        callee = node.node
        return (
            isinstance(callee, nodes.Name)
            and callee.name in _PEBBLE_LOOKUPS
            and node.dyn_args is None
            and node.dyn_kwargs is None
        )
    return False
