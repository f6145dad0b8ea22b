"""Model of the ``http.Request`` task."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from flows import RunnableTask, register_type


class HttpMethod(StrEnum):
    """HTTP methods."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


@register_type("http.Request", aliases=("io.kestra.plugin.core.http.Request",))
class HttpRequest(RunnableTask):
    """Call an HTTP endpoint; outputs ``code``, ``headers`` and ``body``."""

    uri: str
    method: HttpMethod = HttpMethod.GET
    body: Any = None
    form_data: dict[str, Any] | None = None
    content_type: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    allow_failed: bool = False

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequest:
        if self.body is not None and self.form_data is not None:
            raise ValueError("set either 'body' or 'formData', not both")
        return self
