"""Path hygiene and the API token, as one pure ASGI middleware (streams pass untouched).

Before routing, a path with a ``.``/``..`` segment (also percent-encoded), an encoded
slash or backslash, a backslash or a NUL byte is refused with 400, so no path can mean one
thing to this check and another to the router; so is a NUL byte in the query string
(Postgres text cannot hold one: it would reach the store and fail there).

When a token is configured, every request needs ``Authorization: Bearer <token>``,
except exactly ``GET /health`` (the raw path, byte for byte), webhook calls, exactly
``/api/v1/executions/webhook/{namespace}/{flowId}/{key}`` (whose key is their secret, as
in Kestra), and ``GET`` of what holds no data: the OpenAPI document, the Swagger UI page
and its assets, and the web UI's static shell (which then asks for the token and sends it
with every API call). A browser cannot put a bearer header on the page it opens, so
these must load without one.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

HEALTH_PATH = b"/health"
PUBLIC_PATHS = frozenset(
    {b"/", b"/docs", b"/docs/oauth2-redirect", b"/openapi.json", b"/api/v1/openapi.json", b"/ui"}
)
"""Exact paths any ``GET`` may read without the token: they hold no data."""
PUBLIC_PREFIXES = ("/docs-assets/", "/ui/")
"""Static files (the Swagger UI's and the web UI's) any ``GET`` may read without the token."""
WEBHOOK_PREFIX = "/api/v1/executions/webhook/"

_FORBIDDEN_RAW = (b"%2f", b"%5c", b"\\", b"%00", b"\x00")


def path_problem(raw_path: bytes, path: str) -> str | None:
    """Why a request path is refused before routing, or None when it is acceptable.

    Args:
        raw_path: The path as sent (percent-encoded, without the query).
        path: The decoded path the router would see.
    """
    lowered = raw_path.lower()
    if not path.startswith("/") or not raw_path.startswith(b"/"):
        return "the path must start with '/'"
    if any(bad in lowered for bad in _FORBIDDEN_RAW) or "\\" in path or "\x00" in path:
        return "encoded slashes, backslashes and NUL bytes are not allowed in paths"
    if any(segment in (".", "..") for segment in path.split("/")):
        return "'.' and '..' path segments are not allowed"
    return None


def query_problem(query: bytes) -> str | None:
    """Why a request's query string is refused before routing, or None when acceptable."""
    if b"%00" in query or b"\x00" in query:
        return "NUL bytes are not allowed in query parameters"
    return None


def bearer_token(scope: Scope) -> bytes | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return bytes(token.strip())
            return None
    return None


class AuthMiddleware:
    """Refuse ambiguous paths, then require the API token (when one is set).

    Args:
        app: The application it protects.
        token: The API token; None lets every request through (paths are still checked).
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on or answer 400/401."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        raw_path: bytes = scope.get("raw_path") or path.encode()
        raw_path = raw_path.split(b"?", 1)[0]
        problem = path_problem(raw_path, path) or query_problem(scope.get("query_string", b""))
        if problem is not None:
            await _answer(send, scope, 400, problem)
            return
        if self._token is None or self._exempt(scope, raw_path, path):
            await self.app(scope, receive, send)
            return
        sent = bearer_token(scope)
        if sent is None or not hmac.compare_digest(sent, self._token):
            message = "missing API token" if sent is None else "invalid API token"
            await _answer(
                send,
                scope,
                401,
                f"{message}: send 'Authorization: Bearer <token>'",
                {"www-authenticate": 'Bearer realm="kestrel"'},
            )
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _exempt(scope: Scope, raw_path: bytes, path: str) -> bool:
        if scope["type"] != "http":
            return False
        if scope.get("method") == "GET" and (
            raw_path in PUBLIC_PATHS or raw_path == HEALTH_PATH or is_public_static(raw_path, path)
        ):
            return True
        return is_webhook_path(raw_path, path)


def is_public_static(raw_path: bytes, path: str) -> bool:
    """A static file of the Swagger UI or of the web UI (both the raw and the routed path)."""
    return any(
        path.startswith(prefix) and raw_path.startswith(prefix.encode())
        for prefix in PUBLIC_PREFIXES
    )


def is_webhook_path(raw_path: bytes, path: str) -> bool:
    """Exactly ``/api/v1/executions/webhook/{namespace}/{flowId}/{key}``, nothing more.

    A shorter path would reach other routes (``POST /executions/{namespace}/{flowId}``
    with namespace ``webhook``), so only the three-segment form is exempt from the token.
    """
    if not path.startswith(WEBHOOK_PREFIX) or not raw_path.startswith(WEBHOOK_PREFIX.encode()):
        return False
    segments = path[len(WEBHOOK_PREFIX) :].split("/")
    return len(segments) == 3 and all(segments)


async def _answer(
    send: Send, scope: Scope, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"message": message}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
