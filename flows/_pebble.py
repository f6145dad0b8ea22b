"""Pebble syntax (Kestra's template language) on top of the Jinja sandbox.

Kestra's templates are Pebble; ours are Jinja. Both spellings work: this module teaches
the Jinja parser Pebble's extra operators, and nothing else changes (same sandbox, same
context; payloads are data, never templates).

- ``a ? b : c``: the ternary (right-associative, lowest precedence, like Jinja's
  ``b if a else c``).
- ``a ?? b``: ``a`` unless it is undefined or null, else ``b``. Reading a path ``a``
  never fails: ``outputs.missing.value ?? ''`` is ``''``.
- ``a contains b``: membership (a key of a map, an item of a list, a substring);
  ``a equals b``: ``a == b``.

Jinja's lexer has no ``?`` token, so `pebble_source` first rewrites the operators inside
``{{ }}`` and ``{% %}`` into reserved names (outside string literals, line numbers kept),
and `PebbleParser` turns those names into Jinja's own nodes.
"""

from __future__ import annotations

import typing as t
from typing import Any

from jinja2 import Environment, nodes, pass_environment
from jinja2.exceptions import UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import Undefined

COALESCE = "__pebble_coalesce__"
THEN = "__pebble_then__"
ELSE = "__pebble_else__"

_OPEN = {"(": ")", "[": "]", "{": "}"}


LOOKUP = "__pebble_lookup__"
"""Global function that reads a path without failing (see `safe_lookup`)."""


@pass_environment
def safe_lookup(environment: Environment, root: Any, *steps: Any) -> Any:
    """Read ``root`` then each ``('.', name)`` / ``('[', key)`` step; None when missing.

    Used for the left side of ``??``; reads go through the sandbox like any other read.
    """
    value = root
    for index in range(0, len(steps), 2):
        if value is None or isinstance(value, Undefined):
            return None
        kind, key = steps[index], steps[index + 1]
        try:
            value = (
                environment.getattr(value, key) if kind == "." else environment.getitem(value, key)
            )
        except UndefinedError:
            return None
    return None if isinstance(value, Undefined) else value


HAS = "__pebble_has__"
"""Global function: whether a path exists (see `has_path`)."""


@pass_environment
def has_path(environment: Environment, root: Any, *steps: Any) -> bool:
    """Whether ``root`` and each step exist (a null value exists), without failing."""
    value = root
    for index in range(0, len(steps), 2):
        if value is None or isinstance(value, Undefined):
            return False
        kind, key = steps[index], steps[index + 1]
        try:
            value = (
                environment.getattr(value, key) if kind == "." else environment.getitem(value, key)
            )
        except UndefinedError:
            return False
    return not isinstance(value, Undefined)


def _lookup_call(expr: nodes.Expr, function: str = LOOKUP) -> nodes.Expr | None:
    """``a.b['c']`` as ``__pebble_lookup__(a, '.', 'b', '[', 'c')``; None for other shapes."""
    steps: list[nodes.Expr] = []
    node = expr
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            steps[:0] = [nodes.Const("."), nodes.Const(node.attr)]
        else:
            steps[:0] = [nodes.Const("["), node.arg]
        node = node.node
    if not isinstance(node, nodes.Name) or not steps:
        return None
    lineno = expr.lineno
    call = nodes.Call(nodes.Name(function, "load"), [node, *steps], [], None, None, lineno=lineno)
    return call


def pebble_source(source: str) -> str:
    """`source` with Pebble's ``?:``, ``??`` rewritten for `PebbleParser`; else unchanged."""
    if "?" not in source:
        return source
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        start = source.find("{", i)
        if start < 0 or start + 1 >= n:
            out.append(source[i:])
            break
        kind = source[start + 1]
        if kind not in "{%":
            out.append(source[i : start + 1])
            i = start + 1
            continue
        out.append(source[i : start + 2])
        i = _rewrite_block(source, start + 2, "}}" if kind == "{" else "%}", out)
    return "".join(out)


def _rewrite_block(source: str, i: int, end: str, out: list[str]) -> int:
    """Copy one block from `i` to its `end` marker, rewriting ``?``/``??``/``:``."""
    n = len(source)
    depth = 0
    pending: list[int] = []  # bracket depth of each ``?`` still waiting for its ``:``
    while i < n:
        ch = source[i]
        if depth == 0 and source.startswith(end, i):
            out.append(end)
            return i + len(end)
        if ch in "'\"":
            j = i + 1
            while j < n and source[j] != ch:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i : j + 1])
            i = j + 1
            continue
        if ch == "?" and source.startswith("??", i):
            out.append(f" {COALESCE} ")
            i += 2
            continue
        if ch == "?":
            pending.append(depth)
            out.append(f" {THEN} ")
        elif ch == ":" and pending and pending[-1] == depth:
            pending.pop()
            out.append(f" {ELSE} ")
        else:
            if ch in _OPEN:
                depth += 1
            elif ch in ")]}" and depth > 0:
                depth -= 1
            out.append(ch)
        i += 1
    return i


class PebbleParser(Parser):
    """Jinja's parser plus Pebble's ternary, ``??`` and ``contains``."""

    def parse_condexpr(self) -> nodes.Expr:
        """``a ? b : c`` and Jinja's ``b if a else c``."""
        lineno = self.stream.current.lineno
        expr = super().parse_condexpr()
        if self.stream.skip_if(f"name:{THEN}"):
            then = self.parse_condexpr()
            self.stream.expect(f"name:{ELSE}")
            other = self.parse_condexpr()
            return nodes.CondExpr(expr, then, other, lineno=lineno)
        return expr

    def parse_compare(self) -> nodes.Expr:
        """Jinja's comparisons plus ``a contains b`` and ``a equals b`` (same precedence)."""
        lineno = self.stream.current.lineno
        expr = super().parse_compare()
        while self.stream.current.test_any("name:contains", "name:equals"):
            operator = self.stream.current.value
            next(self.stream)
            other = super().parse_compare()
            if operator == "equals":
                expr = nodes.Compare(expr, [nodes.Operand("eq", other)], lineno=lineno)
            else:
                expr = nodes.Compare(other, [nodes.Operand("in", expr)], lineno=lineno)
        return expr

    def parse_test(self, node: nodes.Expr) -> nodes.Expr:
        """Jinja's tests; on a path, ``is [not] defined`` and ``is [not] null`` never fail.

        ``outputs.missing.value is defined`` is false instead of an error (a null value is
        defined, as in Jinja); ``... is null`` is true for a missing path.
        """
        expr = super().parse_test(node)
        test = expr.node if isinstance(expr, nodes.Not) else expr
        if not isinstance(test, nodes.Test) or test.name not in ("defined", "null", "none"):
            return expr
        if test.name == "defined":
            found = _lookup_call(test.node, HAS)
            if found is None:
                return expr
            return nodes.Not(found, lineno=test.lineno) if expr is not test else found
        lookup = _lookup_call(test.node)
        if lookup is None:
            return expr
        null = nodes.Test(lookup, "none", [], [], None, None, lineno=test.lineno)
        return nodes.Not(null, lineno=test.lineno) if expr is not test else null

    def parse_unary(self, with_filter: bool = True) -> nodes.Expr:
        """An operand, then any ``?? operand`` (binds tighter than arithmetic).

        ``a ?? b`` becomes ``a' if a' is not none else b`` where ``a'`` reads the path
        ``a`` without failing; `b` is only evaluated when needed.
        """
        lineno = self.stream.current.lineno
        expr = super().parse_unary(with_filter)
        while self.stream.skip_if(f"name:{COALESCE}"):
            right = super().parse_unary(with_filter)
            left = _lookup_call(expr) or nodes.Filter(
                expr, "default", [nodes.Const(None)], [], None, None, lineno=lineno
            )
            present = nodes.Not(
                nodes.Test(left, "none", [], [], None, None, lineno=lineno), lineno=lineno
            )
            expr = nodes.CondExpr(present, left, right, lineno=lineno)
        return expr


def find_names(node: nodes.Node, kind: type[nodes.Node]) -> t.Iterator[nodes.Node]:
    """Every node of `kind` below `node`, skipping references that may be missing.

    A reference on the left of ``??`` (read by `safe_lookup`), under ``is defined`` or
    piped into ``default`` may legitimately be missing, and one inside a branch of
    ``a ? b : c`` / ``{% if %}`` is read only on some runs (Kestra's own tests use
    ``cond ? 'ok' : ko`` to fail on purpose), so static checks, which refuse what fails
    on every run, skip them.
    """
    if (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Name)
        and node.node.name in (LOOKUP, HAS)
    ):
        return
    if isinstance(node, nodes.Test) and node.name in ("defined", "undefined", "null", "none"):
        return
    if isinstance(node, nodes.CondExpr):  # a branch that may not be taken: only the test
        yield from find_names(node.test, kind)
        return
    if isinstance(node, nodes.If):
        yield from find_names(node.test, kind)
        return
    if isinstance(node, nodes.Filter) and node.name in ("default", "d"):
        for arg in node.args:
            yield from find_names(arg, kind)
        return
    if isinstance(node, kind):
        yield node
    for child in node.iter_child_nodes():
        yield from find_names(child, kind)
