"""Safe YAML reading that remembers where every key and value stands in the file.

Reading is bounded, so a small hostile file cannot exhaust memory or the stack: nesting
deeper than `MAX_DEPTH`, a document that aliases expand beyond `MAX_NODES` values (a
"billion laughs"), or an alias to itself is refused with a `YamlLimitError` at once,
before anything is expanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ._errors import Problem
from ._model import Path, format_path


@dataclass(frozen=True)
class Position:
    """1-based line and column of a key (or of a value, for list items)."""

    line: int
    column: int


@dataclass
class PositionedDocument:
    """Plain data read from YAML plus the position of each key path.

    Attributes:
        data: The document as built by `yaml.SafeLoader` (dicts, lists, scalars).
        keys: Where each mapping key stands; for list items, where the item starts.
        values: Where each value starts.
        problems: Duplicate keys found while reading (YAML itself allows them silently).
    """

    data: Any
    file: str
    keys: dict[Path, Position] = field(default_factory=dict)
    values: dict[Path, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def key_position(self, path: Path) -> Position:
        """Where the key at `path` stands, else the closest enclosing one."""
        return self._closest(self.keys, path)

    def value_position(self, path: Path) -> Position:
        """Where the value at `path` starts, else the closest enclosing one."""
        return self._closest(self.values, path)

    def problem(self, path: Path, message: str, *, at_value: bool = False) -> Problem:
        """A `Problem` located at `path`."""
        pos = self.value_position(path) if at_value else self.key_position(path)
        return Problem(message, format_path(path), self.file, pos.line, pos.column)

    @staticmethod
    def _closest(table: dict[Path, Position], path: Path) -> Position:
        for cut in range(len(path), -1, -1):
            found = table.get(path[:cut])
            if found is not None:
                return found
        return Position(1, 1)


MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted (flows need a few dozen at most)."""
MAX_NODES = 100_000
"""Most values a document may hold once its aliases are expanded."""
MAX_ALIASES = 1_000
"""Most aliases (``*name``) a document may use."""


class YamlLimitError(yaml.MarkedYAMLError):
    """A document refused for its shape (too deep, too many aliases or values)."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class BoundedSafeLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses documents too deep or using too many aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose one node, counting depth and aliases."""
        alias = self.check_event(yaml.AliasEvent)
        if alias:
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                self._refuse(f"more than {MAX_ALIASES} aliases in one document")
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                self._refuse(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _refuse(self, problem: str) -> None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        raise YamlLimitError(problem, event.start_mark)


def check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph that aliases expand beyond `MAX_NODES` values, or that cycles.

    Counts each distinct node once, with memoised sizes, so it costs no more than the
    document's own size however large the expansion would be.

    Raises:
        YamlLimitError: Too large once expanded, or an alias refers to its own ancestor.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlLimitError("an alias refers to a value that contains it", node.start_mark)
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_NODES:
                    break
        active.discard(key)
        if total > MAX_NODES:
            raise YamlLimitError(
                f"the document expands to more than {MAX_NODES} values through its aliases",
                node.start_mark,
            )
        sizes[key] = total
        return total

    size(root)


def safe_load(text: str) -> Any:
    """`yaml.safe_load` with the same bounds as `read_yaml`.

    Raises:
        yaml.YAMLError: Bad YAML, or a `YamlLimitError`.
    """
    loader = BoundedSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _pos(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def read_yaml(text: str, file: str = "<string>") -> PositionedDocument:
    """Read one YAML document with the safe loader, keeping positions.

    Raises:
        yaml.YAMLError: On a syntax error, or a `YamlLimitError` (the caller turns either
            into a `Problem`).
    """
    loader = BoundedSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            check_expansion(node)
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    doc = PositionedDocument(data=data, file=file)
    if node is not None:
        doc.keys[()] = _pos(node.start_mark)
        doc.values[()] = _pos(node.start_mark)
        _index(node, (), doc)
    return doc


def _index(node: yaml.Node, path: Path, doc: PositionedDocument) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or key == "<<":
                continue  # merge keys and complex keys carry no position of their own
            if key in seen:
                doc.problems.append(
                    Problem(
                        f"duplicate key '{key}' (first at line {seen[key].start_mark.line + 1})",
                        format_path((*path, key)),
                        doc.file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                    )
                )
            seen[key] = key_node
            child = (*path, key)
            doc.keys[child] = _pos(key_node.start_mark)
            doc.values[child] = _pos(value_node.start_mark)
            _index(value_node, child, doc)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            doc.keys[child] = _pos(item.start_mark)
            doc.values[child] = _pos(item.start_mark)
            _index(item, child, doc)


def yaml_error_problem(exc: yaml.YAMLError, file: str) -> Problem:
    """A `Problem` for a YAML syntax error, at the position the parser reports."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    reason = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {reason}" + (f" ({context})" if context else "")
    if mark is None:
        return Problem(message, "", file)
    return Problem(message, "", file, mark.line + 1, mark.column + 1)
