"""Errors as JSON ``{"message", "field"?, "errors"?}``: never a stack trace in a body.

`NotFoundError` → 404, `ConflictError` → 409, `FlowError`/`InputError` → 422 (with every
problem), `ExpressionError` → 422, request validation → 400 naming the fields (``body`` for
a body that is not JSON), `UnavailableError`/`NotStartedError` → 503 with ``Retry-After``
(a runtime actor restarting, the database unreachable: `StoreUnavailable`), any other
`KestrelError` → 500 with its message, anything else → 500 with a generic message (the
traceback goes to the log).
Errors raised inside a Ray actor arrive wrapped by Ray; the cause is used
(`actors.unwrap_ray_error`), and every message is one line without escape codes.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors import unwrap_ray_error
from flows import (
    ConflictError,
    ExpressionError,
    FileTooLargeError,
    FlowError,
    InputError,
    KestrelError,
    NotFoundError,
    NotStartedError,
    StorageError,
    StorageFileNotFoundError,
    StoreUnavailable,
    UnavailableError,
)

from ._models import problem_body

_log = logging.getLogger("kestrel.api")


class ApiError(Exception):
    """A request the API refuses, with its status and the offending field.

    Args:
        status: The HTTP status.
        message: What is wrong.
        field: The query parameter, body field or input at fault, if one.
        headers: Extra response headers.
    """

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers


def error_body(
    message: str, field: str | None = None, errors: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON of an error answer."""
    body: dict[str, Any] = {"message": message}
    if field is not None:
        body["field"] = field
    if errors is not None:
        body["errors"] = list(errors)
    return body


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error answer."""
    return JSONResponse(
        error_body(message, field, errors), status_code=status, headers=dict(headers or {})
    )


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def unwrap(exc: BaseException) -> BaseException:
    """The error raised in a Ray actor, rather than Ray's wrapper (whose text is a traceback)."""
    return unwrap_ray_error(exc)


def one_sentence(text: str) -> str:
    """`text` as one line for a person: no escape codes, no traceback below the first line."""
    text = _ANSI.sub("", text)
    head = text.strip().splitlines()[0] if text.strip() else ""
    return head.strip()


def kestrel_error_response(exc: BaseException) -> JSONResponse:
    """The answer for a Kestrel error (possibly wrapped by Ray)."""
    exc = unwrap(exc)
    if isinstance(exc, NotFoundError):
        return error_response(404, one_sentence(str(exc)))
    if isinstance(exc, ConflictError):
        return error_response(409, one_sentence(str(exc)))
    if isinstance(exc, FlowError):
        errors = [problem_body(p).model_dump() for p in exc.problems]
        first = exc.problems[0].path if exc.problems else None
        problems = "; ".join(one_sentence(str(p)) for p in exc.problems) or "no problem given"
        return error_response(422, f"invalid flow: {problems}", first or None, errors)
    if isinstance(exc, InputError):
        errors = [{"field": name, "message": msg} for name, msg in exc.errors.items()]
        return error_response(422, f"invalid inputs: {exc}", next(iter(exc.errors), None), errors)
    if isinstance(exc, StoreUnavailable):
        retry = max(1, math.ceil(exc.retry_after_s))
        _log.warning("request refused, the database is unreachable: %s", exc)
        return error_response(
            503,
            f"the database is unreachable; try again in {retry} s",
            headers={"Retry-After": str(retry)},
        )
    if isinstance(exc, ExpressionError):
        return error_response(422, one_sentence(str(exc)))
    if isinstance(exc, UnavailableError | NotStartedError):
        # A runtime actor restarting (its node died, Ray restarts it elsewhere): transient.
        retry = max(1, math.ceil(getattr(exc, "retry_after_s", 1.0)))
        return error_response(
            503, one_sentence(str(exc)) or type(exc).__name__, headers={"Retry-After": str(retry)}
        )
    if isinstance(exc, FileTooLargeError):
        return error_response(413, one_sentence(str(exc)))
    if isinstance(exc, StorageFileNotFoundError):
        return error_response(404, one_sentence(str(exc)))
    if isinstance(exc, StorageError):
        return error_response(400, one_sentence(str(exc)), "path")
    if isinstance(exc, KestrelError):
        _log.error("request failed: %s: %s", type(exc).__name__, exc)
        return error_response(500, one_sentence(str(exc)) or type(exc).__name__)
    _log.error("request failed", exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__}); see the server log")


def _field_of(loc: Sequence[int | str], kind: str = "") -> str:
    if kind.startswith("json_"):
        return "body"  # the body is not JSON; loc holds a character offset, not a field
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "body", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_response(errors: Sequence[Any]) -> JSONResponse:
    """400 naming every invalid field (from pydantic/FastAPI error dicts)."""
    items = [
        {
            "field": _field_of(err.get("loc", ()), str(err.get("type", ""))),
            "message": str(err.get("msg", "invalid")),
        }
        for err in errors
    ]
    message = "invalid request: " + "; ".join(f"{i['field']}: {i['message']}" for i in items)
    return error_response(400, message, items[0]["field"] if items else None, items)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.field, headers=exc.headers)


async def _kestrel_error(request: Request, exc: Exception) -> JSONResponse:
    return kestrel_error_response(exc)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    return validation_response(exc.errors())


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers and the last-resort 500 middleware."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(KestrelError, _kestrel_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(CatchAllMiddleware)


class CatchAllMiddleware:
    """Answer 500 JSON for any unexpected error (logged with its traceback), never raise.

    A pure ASGI middleware, so streamed (server-sent events) responses pass untouched.

    Args:
        app: The application it wraps.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; turn an escaping error into a 500 answer if nothing was sent."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            cause = unwrap(exc)
            if started:
                _log.error("error while streaming a response", exc_info=cause)
                return
            response = kestrel_error_response(cause)
            await response(scope, receive, send)
