"""The FastAPI application: Kestra's ``/api/v1`` paths over one `Runtime`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline

from .._runtime import Runtime
from .._settings import Settings
from . import (
    _backfill_jobs,
    _deadletters,
    _executions,
    _files,
    _flows,
    _health,
    _kv,
    _logs,
    _namespace_files,
    _namespaces,
    _purge,
    _redrive,
    _stats,
    _trigger_controls,
    _triggers,
    _ui,
    _webhooks,
)
from ._auth import AuthMiddleware
from ._errors import install_error_handlers

API_PREFIX = "/api/v1"
DOCS_ASSETS = "/docs-assets"
"""Where the Swagger UI files of ``/docs`` are served from."""


def create_app(runtime: Runtime, settings: Settings) -> FastAPI:
    """The HTTP API of a started (or starting) runtime.

    Args:
        runtime: What every endpoint calls.
        settings: The server settings: the API token protects every endpoint but
            ``GET /health`` and webhook calls; ``no_auth`` serves it open.

    Returns:
        The ASGI application; OpenAPI documentation is served at ``/docs`` (assets
        included) and the spec at ``/openapi.json`` and ``/api/v1/openapi.json``.

    Raises:
        ValueError: Neither an API token nor ``no_auth``: an open API must be a choice.
    """
    if not settings.api_token and not settings.no_auth:
        raise ValueError("the API needs a token (api_token) or an explicit no_auth=True")
    # Swagger UI's assets come from the fastapi-offline package: /docs works offline.
    app = FastAPIOffline(
        title="Kestrel",
        summary="Real-time event-trigger gateway: Kestra-shaped flows on Ray.",
        version="0.1.0",
        docs_url="/docs",
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
        static_url=DOCS_ASSETS,
    )

    @app.get("/openapi.json", include_in_schema=False)
    async def root_openapi() -> dict[str, Any]:
        return app.openapi()

    app.state.runtime = runtime
    app.state.settings = settings
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(_webhooks.router)  # first: the hot path, and before /executions/{ns}/{id}
    api.include_router(_flows.router)
    api.include_router(_files.router)  # before /executions/{ns}/{id}
    api.include_router(_purge.router)
    api.include_router(_namespaces.flows_router)  # after /flows/search
    api.include_router(_namespaces.namespaces_router)
    api.include_router(_executions.router)
    api.include_router(_namespace_files.router)
    api.include_router(_logs.router)
    api.include_router(_kv.router)
    api.include_router(_stats.router)  # before /triggers/{...}
    api.include_router(_triggers.router)
    api.include_router(_backfill_jobs.router)
    api.include_router(_trigger_controls.router)
    api.include_router(_deadletters.router)
    api.include_router(_redrive.router)
    app.include_router(api)
    # Ahead of every route: it serves webhook calls; the FastAPI ones above document them.
    app.router.routes.insert(0, _webhooks.plain_route(API_PREFIX))
    app.include_router(_health.router)
    app.include_router(_ui.router)
    install_error_handlers(app)
    token = None if settings.no_auth else settings.api_token
    app.add_middleware(AuthMiddleware, token=token)  # outermost
    return app
