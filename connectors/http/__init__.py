"""HTTP: the ``http.Request`` task."""

from ._types import HttpMethod, HttpRequest

__all__ = ["HttpMethod", "HttpRequest"]
