"""The ``http.Request`` task: model and runtime."""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import httpx
from pydantic import Field, model_validator

from flows import RunContext, RunnableTask, TaskError, register_type

# No overall deadline here: the task's ``timeout`` bounds the attempt. A server that
# sends nothing for five minutes is given up on, as Kestra's default read-idle timeout.
_TIMEOUT = httpx.Timeout(300.0, connect=30.0)
_RETRIABLE_CODES = frozenset({408, 425, 429})


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

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Send the request and return the response.

        The body: a string or bytes is sent as is; any other value as JSON, or as a form
        when ``contentType`` is ``application/x-www-form-urlencoded`` or
        ``multipart/form-data`` (as ``formData`` always is). Redirects are followed.

        Returns:
            ``{"uri", "code", "headers", "body"}``: the final URI, the status code, the
            headers (lower-case name → list of values) and the body (parsed when the
            response is JSON, else text; None when empty).

        Raises:
            TaskError: The request failed, or the status is 400 or more and not
                ``allowFailed`` (retriable for 5xx, 408, 425 and 429).
        """
        headers, content = self._request_parts()
        try:
            async with httpx.AsyncClient(
                verify=_ssl_context(), timeout=_TIMEOUT, follow_redirects=True
            ) as client:
                response = await client.request(
                    self.method.value, self.uri, headers=headers, **content
                )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise TaskError(f"invalid uri '{self.uri}': {exc}", retriable=False) from exc
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise TaskError(f"{self.method.value} {self.uri} failed: {detail}") from exc
        if response.status_code >= 400 and not self.allow_failed:
            code = response.status_code
            raise TaskError(
                f"{self.method.value} {self.uri} failed: HTTP {code} {response.reason_phrase}",
                retriable=code >= 500 or code in _RETRIABLE_CODES,
            )
        return {
            "uri": str(response.url),
            "code": response.status_code,
            "headers": {name: response.headers.get_list(name) for name in response.headers},
            "body": _response_body(response),
        }

    def _request_parts(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The headers and the httpx body arguments (``content``, ``data`` or ``files``)."""
        headers = dict(self.headers)
        given = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        content_type = self.content_type or given
        mime = (content_type or "").split(";")[0].strip().lower()
        fields = self.form_data if self.form_data is not None else self.body
        if mime == "multipart/form-data" or self.form_data is not None:
            if not isinstance(fields, Mapping):
                raise TaskError("a form body must be a mapping of fields", retriable=False)
            if mime == "multipart/form-data":
                # httpx writes the Content-Type itself: it must carry the boundary.
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                return headers, {"files": {k: (None, _field(v)) for k, v in fields.items()}}
            return _with_type(headers, content_type), {"data": _form(fields)}
        if mime == "application/x-www-form-urlencoded" and isinstance(self.body, Mapping):
            return _with_type(headers, content_type), {"data": _form(self.body)}
        if self.body is None:
            return _with_type(headers, content_type), {}
        if isinstance(self.body, bytes):
            return _with_type(headers, content_type), {"content": self.body}
        if isinstance(self.body, str):
            return _with_type(headers, content_type), {"content": self.body.encode()}
        encoded = json.dumps(self.body, default=str).encode()
        return _with_type(headers, content_type or "application/json"), {"content": encoded}


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process: building one costs tens of milliseconds."""
    return httpx.create_ssl_context()


def _with_type(headers: dict[str, str], content_type: str | None) -> dict[str, str]:
    if content_type is None or any(k.lower() == "content-type" for k in headers):
        return headers
    return {**headers, "Content-Type": content_type}


def _field(value: Any) -> str:
    """A form field's text: strings as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _form(fields: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """URL-encoded form fields; a list gives the field once per item."""
    return {
        str(k): [_field(i) for i in v] if isinstance(v, list) else _field(v)
        for k, v in fields.items()
    }


def _response_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text
