"""One registry of every task and trigger type, with short names and Kestra aliases.

Built-in flow types register when `flows` is imported; connector types and third-party
types arrive through the ``kestrel.plugins`` entry-point group. An entry point names a
module (importing it registers its types with `register_type`) or a callable taking the
registry.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Literal, TypeVar

from ._errors import RegistryError

ENTRY_POINT_GROUP = "kestrel.plugins"
Kind = Literal["task", "trigger"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T", bound=type)


@dataclass(frozen=True)
class TypeInfo:
    """A registered type: its canonical short name, model class and aliases."""

    name: str
    cls: type
    kind: Kind
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name followed by every alias."""
        return (self.name, *self.aliases)


@dataclass
class TypeRegistry:
    """Maps type names (short or Kestra-qualified) to model classes."""

    _by_name: dict[str, TypeInfo] = field(default_factory=dict)
    _canonical: dict[str, TypeInfo] = field(default_factory=dict)
    _loaded: bool = False
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def add(self, name: str, cls: type, kind: Kind, aliases: tuple[str, ...] = ()) -> TypeInfo:
        """Register `cls` under `name` and `aliases`.

        Raises:
            RegistryError: When a name is already taken by another class.
        """
        info = TypeInfo(name, cls, kind, tuple(aliases))
        with self._lock:
            for n in info.names:
                taken = self._by_name.get(n)
                if taken is not None and taken.cls is not cls:
                    raise RegistryError(
                        f"type name '{n}' is already registered by {taken.cls.__qualname__}"
                    )
            for n in info.names:
                self._by_name[n] = info
            self._canonical[name] = info
        return info

    def load(self) -> None:
        """Import the built-in types and every ``kestrel.plugins`` entry point, once."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            importlib.import_module("flows._tasks_core")
            importlib.import_module("flows._tasks_kestra")
            importlib.import_module("flows._tasks_runnable")
            importlib.import_module("flows._triggers_core")
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    loaded = ep.load()
                except Exception as exc:  # a broken plugin must not take the others down
                    _log.error("plugin %s (%s) failed to load: %s", ep.name, ep.value, exc)
                    continue
                if not isinstance(loaded, ModuleType) and callable(loaded):
                    loaded(self)

    def get(self, name: str) -> TypeInfo | None:
        """The type registered under `name` (canonical or alias), or None."""
        self.load()
        return self._by_name.get(name)

    def resolve(self, name: str, kind: Kind | None = None) -> TypeInfo:
        """Like `get`, but raises `RegistryError` naming the closest known types."""
        info = self.get(name)
        if info is None or (kind is not None and info.kind != kind):
            hint = self.closest(name, kind)
            did = f"; did you mean {', '.join(hint)}?" if hint else ""
            raise RegistryError(f"unknown {kind or 'type'} '{name}'{did}")
        return info

    def closest(self, name: str, kind: Kind | None = None, n: int = 3) -> list[str]:
        """Known names that look like `name`, canonical names first."""
        self.load()
        pool = [k for k, v in self._by_name.items() if kind is None or v.kind == kind]
        short = [k for k in pool if k in self._canonical]
        found = difflib.get_close_matches(name, short, n=n, cutoff=0.5)
        if not found:
            # A Kestra-qualified name that is nearly right; answer with our short name.
            found = [
                self._by_name[k].name
                for k in difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
            ]
        if not found:
            tail = name.rsplit(".", 1)[-1].lower()
            found = [k for k in short if k.rsplit(".", 1)[-1].lower() == tail][:n]
        return list(dict.fromkeys(found))

    def types(self, kind: Kind | None = None) -> Iterator[TypeInfo]:
        """Every registered type, each once, sorted by canonical name."""
        self.load()
        for name in sorted(self._canonical):
            info = self._canonical[name]
            if kind is None or info.kind == kind:
                yield info


REGISTRY = TypeRegistry()
"""The process-wide registry."""


def register_type(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[_T], _T]:
    """Class decorator: register a task or trigger model under `name` and `aliases`.

    The kind (task or trigger) comes from the class's base.
    """

    def deco(cls: _T) -> _T:
        kind: Kind = getattr(cls, "kind", "task")
        REGISTRY.add(name, cls, kind, aliases)
        cls.type_name = name  # type: ignore[attr-defined]
        cls.type_aliases = aliases  # type: ignore[attr-defined]
        return cls

    return deco
