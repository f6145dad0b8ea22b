"""NUL characters in request values: Postgres text and jsonb cannot hold one; none is accepted."""

from __future__ import annotations

from typing import Any

NUL_REFUSED = "NUL characters (\\u0000) are not allowed: the database cannot store them"
"""Why a value holding a NUL character is refused."""


def has_nul(value: Any) -> bool:
    """Whether a decoded JSON value (or form pairs) holds a NUL character in a string or key."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(item) for item in value)
    return False
