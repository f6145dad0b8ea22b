"""Load flows from YAML: safe loading, every problem of a file at once, with file:line:col."""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ._checks import check_flow
from ._errors import FlowError, Problem
from ._model import Flow, Path, _TypedRef, yaml_key
from ._raw_checks import duplicate_ids
from ._registry import REGISTRY
from ._yaml_positions import PositionedDocument, read_yaml, yaml_error_problem

FLOW_SUFFIXES = (".yaml", ".yml")


def load_flow(path: str | FsPath) -> Flow:
    """Read and validate one flow file.

    Raises:
        FlowError: With every problem found, each at its file:line:col.
    """
    file = FsPath(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError([Problem(f"cannot read file: {exc}", "", str(file))]) from None
    return parse_flow(text, str(file))


def parse_flow(text: str, file: str = "<string>") -> Flow:
    """Validate flow YAML given as text.

    Raises:
        FlowError: With every problem found, each at its file:line:col.
    """
    flow, problems = _parse(text, file)
    if problems or flow is None:
        raise FlowError(problems)
    return flow


def validate_flow_text(text: str, file: str = "<string>") -> list[Problem]:
    """Every problem of a flow text; empty when it is valid."""
    return _parse(text, file)[1]


def iter_flow_files(paths: Iterable[str | FsPath]) -> Iterator[FsPath]:
    """Flow files among `paths`: files as given, folders searched recursively, sorted.

    Hidden entries below a folder (``.git``, editors' temp files, the ``..<timestamp>``
    copies a Kubernetes ConfigMap volume keeps) are skipped.
    """
    for raw in paths:
        path = FsPath(raw)
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.suffix in FLOW_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            yield path


def _parse(text: str, file: str) -> tuple[Flow | None, list[Problem]]:
    try:
        doc = read_yaml(text, file)
    except yaml.YAMLError as exc:
        return None, [yaml_error_problem(exc, file)]
    if not isinstance(doc.data, dict):
        kind = "empty" if doc.data is None else type(doc.data).__name__
        return None, [doc.problem((), f"a flow must be a YAML mapping, got {kind}")]
    problems = list(doc.problems)
    data = apply_plugin_defaults(doc.data)
    try:
        flow = Flow.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(err, doc) for err in exc.errors(include_url=False))
        # No Flow to check, but duplicate ids are plain in the document: same pass.
        problems.extend(doc.problem(path, message) for path, message in duplicate_ids(data))
        return None, _unique(problems)
    problems.extend(check_flow(flow, doc))
    return (flow if not problems else None), _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    """Sorted, without repeats; union alternatives at one place become one problem."""
    merged: dict[tuple[str, int, int, str], Problem] = {}
    out: list[Problem] = []
    for problem in dict.fromkeys(problems):
        key = (problem.file, problem.line, problem.column, problem.path)
        if problem.message.startswith(_EXPECTED) and key in merged:
            first = merged[key]
            wanted = problem.message.removeprefix(_EXPECTED)
            combined = Problem(
                f"{first.message} or {wanted}", first.path, first.file, first.line, first.column
            )
            out[out.index(first)] = combined
            merged[key] = combined
            continue
        if problem.message.startswith(_EXPECTED):
            merged[key] = problem
        out.append(problem)
    return sorted(out, key=lambda p: (p.line, p.column, p.message))


_EXPECTED = "Input should be a valid "


# --- pluginDefaults -------------------------------------------------------------------


def apply_plugin_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Merge ``pluginDefaults`` values into every matching task and trigger mapping.

    A default applies to a type when its ``type`` equals the task's type (short or Kestra
    name) or is a dotted prefix of it. Values set on the task win unless ``forced``.
    """
    defaults = data.get("pluginDefaults") or data.get("taskDefaults")
    if not isinstance(defaults, list) or not defaults:
        return data
    usable = [d for d in defaults if _is_default(d)]
    out = copy.deepcopy(data)
    for key in ("tasks", "errors", "finally", "afterExecution", "triggers"):
        _merge_into(out.get(key), usable)
    return out


def _is_default(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("type"), str)
        and isinstance(entry.get("values"), dict)
    )


def _type_matches(wanted: str, actual: str) -> bool:
    names = {actual}
    info = REGISTRY.get(actual)
    if info is not None:
        names.update(info.names)
    return any(n == wanted or n.startswith(wanted + ".") for n in names)


def _merge_into(node: Any, defaults: list[dict[str, Any]]) -> None:
    if isinstance(node, list):
        for item in node:
            _merge_into(item, defaults)
    elif isinstance(node, dict):
        kind = node.get("type")
        if isinstance(kind, str):
            for d in defaults:
                if _type_matches(d["type"], kind):
                    for k, v in d["values"].items():
                        if d.get("forced") or k not in node:
                            node[k] = copy.deepcopy(v)
        for value in node.values():
            if isinstance(value, list | dict):
                _merge_into(value, defaults)


# --- error descriptions ---------------------------------------------------------------


def _describe(err: ErrorDetails, doc: PositionedDocument) -> Problem:
    loc = tuple(err["loc"])
    path = _document_path(doc.data, loc)
    kind = err["type"]
    if kind == "missing":
        return doc.problem(path[:-1], f"missing required property '{path[-1]}'")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return doc.problem(path, f"unknown property '{path[-1]}'{hint}")
    if kind.startswith("unknown_") and kind.endswith("_type"):
        what = kind.removeprefix("unknown_").removesuffix("_type")
        name = _get(doc.data, (*path, "type"))
        close = REGISTRY.closest(str(name), "task" if what == "task" else "trigger")
        did = f"; did you mean {', '.join(close)}?" if close else ""
        return doc.problem((*path, "type"), f"unknown {what} type '{name}'{did}", at_value=True)
    if kind == "union_tag_not_found":
        return doc.problem(path, "missing required property 'type'")
    message = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if isinstance(err.get("input"), bool) and kind == "string_type":
        message += " (YAML reads yes/no/on/off/true/false as booleans: quote it)"
    at_value = bool(path) and isinstance(_get(doc.data, path), str | int | float | bool)
    return doc.problem(path, message, at_value=at_value)


def _get(data: Any, path: Path) -> Any:
    for part in path:
        if isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        elif isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def _document_path(data: Any, loc: tuple[int | str, ...]) -> Path:
    """Drop pydantic's union tags from `loc`, keeping the keys present in the document."""
    out: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
            out.append(part)
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part] if part < len(node) else None
            out.append(part)
        elif index == len(loc) - 1 and not _is_tag(part):
            out.append(part)  # a missing or unknown key: it is the last part
        # else: a union tag such as 'core.Log' or 'list[Label]'
    return tuple(out)


_PLAIN_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "none", "any", "dict", "list"})


def _is_tag(part: int | str) -> bool:
    """A pydantic union tag: a registered type name or a type like ``str``/``list[...]``."""
    if not isinstance(part, str):
        return False
    return REGISTRY.get(part) is not None or "[" in part or part in _PLAIN_TAGS


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The YAML keys the model at `loc` accepts, found by walking the model types."""
    target: Any = Flow
    for part in loc:
        target = _step(target, part)
        if target is None:
            return []
    model = _unwrap_model(target)
    if model is None:
        return []
    return [yaml_key(name, f) for name, f in model.model_fields.items()]


def _step(target: Any, part: int | str) -> Any:
    if isinstance(part, str) and ("[" in part or part in _PLAIN_TAGS):
        return target  # a union tag: the next part is inside the same value
    info = REGISTRY.get(part) if isinstance(part, str) else None
    if info is not None:
        return info.cls
    origin = typing.get_origin(target)
    args = typing.get_args(target)
    if origin is typing.Annotated:
        if any(isinstance(m, type) and issubclass(m, _TypedRef) for m in args[1:]):
            return target  # the next part is the registry tag
        return _step(args[0], part)
    if origin in (typing.Union, types.UnionType):
        return next((f for f in (_step(a, part) for a in args) if f is not None), None)
    if isinstance(part, int):
        return args[0] if origin is list and args else None
    if origin is dict and args:
        return args[1]
    return _field_type(target, part)


def _field_type(target: Any, key: str) -> Any:
    model = _unwrap_model(target)
    if model is None:
        return None
    for name, f in model.model_fields.items():
        if key == yaml_key(name, f):
            return f.annotation
    return None


def _unwrap_model(target: Any) -> type[BaseModel] | None:
    if isinstance(target, type) and issubclass(target, BaseModel):
        return target
    if typing.get_origin(target) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(target):
            model = _unwrap_model(arg)
            if model is not None:
                return model
    return None
