"""Safe YAML reading that remembers where every key and value stands in the file."""

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


def _pos(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def read_yaml(text: str, file: str = "<string>") -> PositionedDocument:
    """Read one YAML document with the safe loader, keeping positions.

    Raises:
        yaml.YAMLError: On a syntax error (the caller turns it into a `Problem`).
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
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
