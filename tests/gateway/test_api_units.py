"""Error translation and path checks, on a bare app (no server needed)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from ray.exceptions import RayTaskError

from flows import InputError, KestrelError
from gateway._api._auth import path_problem
from gateway._api._errors import install_error_handlers


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/kestrel")
    async def kestrel() -> None:
        raise KestrelError("the store is unhappy")

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret internals")

    @app.get("/wrapped")
    async def wrapped() -> None:
        cause = InputError({"n": "expected INT"})
        raise RayTaskError(
            "create", "Traceback (most recent call last): ...", cause
        ).as_instanceof_cause()

    return app


async def test_errors_are_json_without_tracebacks() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        kestrel = await client.get("/kestrel")
        assert kestrel.status_code == 500 and kestrel.json() == {"message": "the store is unhappy"}
        bug = await client.get("/bug")
        assert bug.status_code == 500
        assert "RuntimeError" in bug.json()["message"] and "secret" not in bug.text
        wrapped = await client.get("/wrapped")
        assert wrapped.status_code == 422
        assert wrapped.json()["field"] == "n" and "Traceback" not in wrapped.text


@pytest.mark.parametrize(
    ("raw", "path", "refused"),
    [
        (b"/api/v1/flows", "/api/v1/flows", False),
        (b"/api/v1/kv/a.b", "/api/v1/kv/a.b", False),
        (b"/api/v1/kv/..a", "/api/v1/kv/..a", False),
        (b"/a/../b", "/a/../b", True),
        (b"/a/%2E%2E/b", "/a/../b", True),
        (b"/a/./b", "/a/./b", True),
        (b"/a%2Fb", "/a/b", True),
        (b"/a%5Cb", "/a\\b", True),
        (b"/a\\b", "/a\\b", True),
        (b"/a%00", "/a\x00", True),
        (b"*", "*", True),
    ],
)
def test_path_problem(raw: bytes, path: str, refused: bool) -> None:
    assert (path_problem(raw, path) is not None) is refused
