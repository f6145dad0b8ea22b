"""``/api/v1/executions/webhook/{namespace}/{flowId}/{key}``: start a flow from an HTTP call.

The key (and the HMAC signature, when the trigger has one) is the secret: these calls need
no API token. An unknown flow, a wrong key and a wrong signature all get the same 404.

Requests are served by `plain_route`, a Starlette route the app puts ahead of every other:
FastAPI's route adds its dependency resolution and a second validation of the answer
against ``response_model`` to every call of the hot path. The FastAPI routes stay, behind
it, for the OpenAPI document.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Route

from .._runtime import Runtime
from .._settings import Settings
from ._bodies import is_json, media_type, parse_json, read_body, refuse_nul
from ._deps import RuntimeDep, SettingsDep
from ._models import ErrorBody, ExecutionBody, execution_body
from ._secret_inputs import masked

router = APIRouter(prefix="/executions/webhook", tags=["webhooks"])

WEBHOOK_MAX_BYTES = 10 * 1024 * 1024
"""The largest webhook body accepted (413 beyond)."""


def _headers(request: Request, api_token: str | None) -> dict[str, str]:
    """Request headers (lower-case names, repeated ones joined), minus our own API token."""
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        if name == "authorization" and api_token is not None:
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                token.strip().encode(), api_token.encode()
            ):
                continue  # never store the server's own token in trigger variables
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _parameters(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name in out:
            existing = out[name]
            out[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[name] = value
    return out


async def webhook(
    namespace: str,
    flow_id: str,
    key: str,
    request: Request,
    runtime: RuntimeDep,
    settings: SettingsDep,
) -> Any:
    """Start the flow from a webhook call; answers the execution (outputs with returnOutputs).

    The flow sees ``trigger.body`` (JSON when sent as JSON, else text), ``trigger.headers``
    and ``trigger.parameters`` (the query).
    """
    return await _call(namespace, flow_id, key, request, runtime, settings)


async def _serve(request: Request) -> Response:
    """`webhook` as a plain Starlette endpoint (see `plain_route`)."""
    path = request.path_params
    state = request.app.state
    return await _call(
        path["namespace"], path["flow_id"], path["key"], request, state.runtime, state.settings
    )


async def _call(
    namespace: str,
    flow_id: str,
    key: str,
    request: Request,
    runtime: Runtime,
    settings: Settings,
) -> Response:
    raw = await read_body(request, WEBHOOK_MAX_BYTES)
    body: Any = None
    if raw:
        if is_json(media_type(request)):
            body = parse_json(raw)
        else:
            body = raw.decode("utf-8", "replace")
            refuse_nul(body, "body")
    trigger, execution = await runtime.webhooks.call(
        namespace,
        flow_id,
        key,
        raw_body=raw,
        body=body,
        headers=_headers(request, settings.api_token),
        parameters=_parameters(request),
    )
    if trigger.return_outputs:
        return JSONResponse(execution.outputs or {})
    answer = execution_body(await masked(runtime.store, execution))
    return JSONResponse(answer.model_dump(mode="json", by_alias=True))  # as response_model does


def plain_route(prefix: str) -> Route:
    """The webhook path under `prefix` as a Starlette route: GET, POST and PUT (no HEAD)."""
    route = Route(f"{prefix}{router.prefix}/{{namespace}}/{{flow_id}}/{{key}}", _serve)
    route.methods = {"GET", "POST", "PUT"}  # Starlette adds HEAD to GET: a HEAD starts nothing
    return route


for _method in ("GET", "POST", "PUT"):
    router.add_api_route(
        "/{namespace}/{flow_id}/{key}",
        webhook,
        methods=[_method],
        operation_id=f"webhook_{_method.lower()}",
        response_model=ExecutionBody,
        responses={
            400: {"model": ErrorBody},
            404: {"model": ErrorBody},
            413: {"model": ErrorBody},
        },
    )
