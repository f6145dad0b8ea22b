"""Secret values are opaque in expressions: used as they are, never transformed.

A SECRET input (or a ``secret()`` value) reaches templates as a `SecretValue`. Used as it
is (``{{ inputs.password }}``, ``"Bearer {{ secret('TOKEN') }}"``) it renders, and every
log line and stored output masks it, with its base64, JSON and URL-encoded forms. But a
transform would launder it past that mask (``|reverse``, ``|upper``, ``|list|join(' ')``,
slicing, ``.lower()``), so the sandbox refuses them all: any attribute, item or slice of a
secret, and any filter but those whose result is still masked (``tojson``, ``urlencode``,
``string``, ``default``) or says nothing of it (``length``).

`ExpressionEngine` calls this module through a narrow hook: `refuse_access` from the
sandbox's ``getattr``/``getitem`` and `guard` on its filters and globals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2.exceptions import SecurityError

from ._inputs import SecretValue

SAFE_FILTERS = frozenset(
    {"tojson", "json", "toJson", "urlencode", "string", "default", "d", "length", "count"}
)
"""Filters a secret may go through: their result is still masked, or reveals nothing."""


class SecretTransformError(SecurityError):
    """A template tried to transform a secret value."""


def _refuse(what: str) -> SecretTransformError:
    return SecretTransformError(
        f"{what} of a secret value is not allowed: secrets are used as they are "
        "(a transformed secret would escape masking)"
    )


def refuse_access(obj: Any, what: str) -> None:
    """Raise if ``obj`` is a secret (an attribute, item or slice of it was asked for)."""
    if isinstance(obj, SecretValue):
        raise _refuse(what)


def guard(filters: dict[str, Callable[..., Any]], globals_: dict[str, Any]) -> None:
    """Make filters refuse secrets (but `SAFE_FILTERS`) and ``secret()`` return secrets."""
    for name, original in list(filters.items()):
        if name in SAFE_FILTERS:
            continue
        filters[name] = _guarded_filter(name, original)
    lookup = globals_.get("secret")
    if callable(lookup):

        def secret(*args: Any, **kwargs: Any) -> Any:
            value = lookup(*args, **kwargs)
            return SecretValue(value) if isinstance(value, str) else value

        globals_["secret"] = secret


def _guarded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    mark = getattr(original, "jinja_pass_arg", None)
    skip = 0 if mark is None else 1  # context/environment/eval context comes first

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip and isinstance(args[skip], SecretValue):
            raise _refuse(f"the '{name}' filter")
        return original(*args, **kwargs)

    if mark is not None:
        guarded.jinja_pass_arg = mark  # type: ignore[attr-defined]
    return guarded
