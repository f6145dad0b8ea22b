"""`SecretMask`: the secret values of one execution, masked for that execution only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import _expression_functions as fn


class SecretMask:
    """Hides a fixed set of secret values (and their base64/JSON/URL forms) with ``******``.

    An execution's SECRET inputs belong to it, not to the process-wide `ExpressionEngine`
    (which would remember every value forever): the execution masks with the engine (for
    ``secret()`` values) and then with its own `SecretMask`, dropped when it ends.

    Args:
        secrets: The secret values; empty ones are ignored.
    """

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            forms |= fn.secret_forms(secret)
        self._pattern = fn.mask_pattern(forms)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        """`text` with every secret replaced."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(fn.MASK, text)

    def mask_value(self, value: Any) -> Any:
        """`mask` every string in a value: mappings (keys too), lists and tuples, recursively."""
        return fn.mask_with(self._pattern, value)
