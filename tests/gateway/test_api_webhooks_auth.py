"""Webhooks (key, HMAC signature, same 404 for every miss) and the API token's edges."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import httpx
import pytest

from tests.gateway._flows import deploy, wait_state, webhook_flow
from tests.gateway.conftest import LiveServer

pytestmark = pytest.mark.integration

KEY = "hook-key-0123456789"
SECRET = "hmac-secret"


async def test_webhook_starts_an_execution(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    await deploy(api, webhook_flow(namespace, KEY))
    url = f"/api/v1/executions/webhook/{namespace}/hooked/{KEY}"
    response = await anonymous.post(
        url,
        json={"x": 41},
        params={"source": "test", "tag": ["a", "b"]},
        headers={"X-Custom": "yes", "Authorization": f"Bearer {live_server.token}"},
    )
    assert response.status_code == 200, response.text
    execution = response.json()
    assert execution["trigger"]["id"] == "hook"
    variables = execution["trigger"]["variables"]
    assert variables["body"] == {"x": 41}
    assert variables["headers"]["x-custom"] == "yes"
    assert "authorization" not in variables["headers"]  # the API token is never stored
    assert variables["parameters"] == {"source": "test", "tag": ["a", "b"]}
    done = await wait_state(api, execution["id"])
    assert done["state"]["current"] == "SUCCESS"
    logs = (await api.get(f"/api/v1/logs/{execution['id']}")).json()
    assert [line["message"] for line in logs] == ["got 41"]

    text = await anonymous.put(url, content=b"x=1", headers={"Content-Type": "text/plain"})
    assert text.status_code == 200
    assert text.json()["trigger"]["variables"]["body"] == "x=1"
    get = await anonymous.get(url, params={"x": "1"})
    assert get.status_code == 200 and get.json()["trigger"]["variables"]["body"] is None

    invalid = await anonymous.post(
        url, content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert invalid.status_code == 400

    wrong_key = await anonymous.post(
        f"/api/v1/executions/webhook/{namespace}/hooked/wrong-key-123", json={}
    )
    unknown_flow = await anonymous.post(
        f"/api/v1/executions/webhook/{namespace}/nope/{KEY}", json={}
    )
    assert wrong_key.status_code == unknown_flow.status_code == 404
    assert wrong_key.json() == unknown_flow.json()
    deleted = await anonymous.delete(url)
    assert deleted.status_code == 405
    head = await anonymous.head(url)  # Starlette answers HEAD for GET routes: not this one
    assert head.status_code == 405
    spec = (await anonymous.get("/api/v1/openapi.json")).json()
    documented = spec["paths"]["/api/v1/executions/webhook/{namespace}/{flow_id}/{key}"]
    assert set(documented) == {"get", "post", "put"}


async def test_webhook_signature(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(api, webhook_flow(namespace, KEY, "signed", secret=SECRET))
    url = f"/api/v1/executions/webhook/{namespace}/signed/{KEY}"
    raw = json.dumps({"x": 7}).encode()
    good = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Kestrel-Signature": good}
    ok = await anonymous.post(url, content=raw, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["trigger"]["variables"]["body"] == {"x": 7}

    forged = await anonymous.post(url, content=raw + b" ", headers=headers)
    missing = await anonymous.post(url, content=raw, headers={"Content-Type": "application/json"})
    unknown = await anonymous.post(
        f"/api/v1/executions/webhook/{namespace}/nope/{KEY}", content=raw, headers=headers
    )
    assert forged.status_code == missing.status_code == 404
    assert forged.json() == missing.json() == unknown.json()


async def _raw(
    live_server: LiveServer, method: str, target: str, token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with the target sent exactly as given (no client normalisation)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    try:
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: 127.0.0.1:{live_server.port}",
            "Connection: close",
        ]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


async def test_token_required_everywhere_but_health(live_server: LiveServer) -> None:
    status, _, body = await _raw(live_server, "GET", "/health")
    assert status == 200 and json.loads(body) == {"status": "UP"}
    status, _, _ = await _raw(live_server, "GET", "/health?probe=1")
    assert status == 200

    refused = [
        ("GET", "/api/v1/flows/search"),
        ("GET", "/health/"),
        ("GET", "//health"),
        ("GET", "/healthz"),
        ("GET", "/health.json"),
        ("GET", "/HEALTH"),
        ("POST", "/health"),
        ("HEAD", "/health"),
        ("GET", "/metrics"),
        ("POST", "/docs"),
        ("GET", "/docs/"),
        ("GET", "/DOCS"),
        ("GET", "/api/v1/openapi.yaml"),
        ("POST", "/ui/"),
        ("GET", "/uix"),
        ("GET", "/api/v1/logs/x/follow"),
        ("GET", "/api/v1/executions/x/follow"),
        ("POST", "/api/v1/executions/webhook/flowname"),  # = POST /executions/{ns}/{flow}
        ("POST", "/api/v1/executions/webhook/a/b/c/"),
        ("GET", "/api/v1/executions/webhook"),
    ]
    for method, target in refused:
        status, headers, body = await _raw(live_server, method, target)
        assert status == 401, (method, target, status)
        assert headers["www-authenticate"].startswith("Bearer")
        if method != "HEAD":
            assert "token" in json.loads(body)["message"]
    # What holds no data loads without a token: a browser can't send one for the page itself.
    for target in ("/docs", "/openapi.json", "/api/v1/openapi.json"):
        status, _, _ = await _raw(live_server, "GET", target)
        assert status == 200, target
    status, _, _ = await _raw(live_server, "GET", "/api/v1/flows/search", token="wrong")
    assert status == 401
    status, _, _ = await _raw(live_server, "GET", "/api/v1/flows/search", token=live_server.token)
    assert status == 200


async def test_path_tricks_are_refused_before_routing(live_server: LiveServer) -> None:
    tricks = [
        "/health/../api/v1/flows/search",
        "/health/%2e%2e/api/v1/flows/search",
        "/health%2F..%2Fapi/v1/flows/search",
        "/health%2f",
        "/api/v1/../health",
        "/api/v1/./flows/search",
        "/api/v1/executions/webhook/../../flows/search",
        "/api/v1/executions/webhook/a/b/..",
        "/api/v1/executions/webhook/a%2Fb/c/d",
        "/health%5c",
        "/health%00",
    ]
    for target in tricks:
        for token in (None, live_server.token):
            status, _, body = await _raw(live_server, "GET", target, token)
            assert status == 400, (target, status, body)
            assert "message" in json.loads(body)
