"""Errors across the Ray boundary: a call to an actor raises the `KestrelError` it raised.

Ray wraps an exception raised inside an actor in a ``RayTaskError`` whose text is the
remote traceback (with ANSI colours). Callers of actors await through `remote_call`, so
the error they see is the typed one the actor raised, and an actor that died is an
`UnavailableError` with one sentence, never a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from ray.exceptions import RayActorError, RayTaskError

from flows import KestrelError, UnavailableError

T = TypeVar("T")


def unwrap_ray_error(exc: BaseException) -> BaseException:
    """The error raised inside a Ray task or actor, rather than Ray's wrapper.

    A ``RayTaskError`` gives its cause (recursively); a ``RayActorError`` (the actor died
    or could not start) becomes an `UnavailableError`. Anything else is returned as is.
    """
    seen = 0
    while isinstance(exc, RayTaskError) and seen < 16:
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException):
            break
        exc, seen = cause, seen + 1
    if isinstance(exc, RayActorError):
        return UnavailableError(f"a runtime actor is unavailable ({type(exc).__name__})")
    return exc


async def remote_call(ref: Awaitable[T]) -> T:
    """Await an actor call; a Kestrel error raised in the actor is raised here as itself.

    Raises:
        KestrelError: What the actor raised (``NotFoundError``, ``InputError``, ...).
        UnavailableError: The actor died.
    """
    try:
        return await ref
    except (RayTaskError, RayActorError) as exc:
        cause = unwrap_ray_error(exc)
        if isinstance(cause, KestrelError):
            raise cause from None
        raise
