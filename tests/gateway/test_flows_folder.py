"""The flows folder: a saved file is live within a second; a broken edit keeps the old one."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from tests.gateway._flows import sleepy_flow
from tests.gateway.conftest import LiveServer
from tests.polling import eventually

pytestmark = pytest.mark.integration


async def _until(api: httpx.AsyncClient, path: str, check: Any, within: float) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        response = await api.get(path)
        ok = response.status_code == 200 and check(response.json())
        return dict(response.json()) if ok else None

    return await eventually(found, within, what=f"GET {path}", interval=0.05)


async def test_folder_edits_go_live(
    api: httpx.AsyncClient,
    live_server: LiveServer,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = live_server.flows_dir / f"{namespace}.yaml"
    url = f"/api/v1/flows/{namespace}/sleepy"
    path.write_text(sleepy_flow(namespace), encoding="utf-8")
    first = await _until(api, url, lambda f: f["revision"] == 1, within=1.0)
    assert "PT0.5S" in first["source"]

    path.write_text(sleepy_flow(namespace, sleep="PT0.2S"), encoding="utf-8")
    second = await _until(api, url, lambda f: f["revision"] == 2, within=1.0)
    assert "PT0.2S" in second["source"]

    caplog.set_level(logging.ERROR, logger="kestrel.sync")
    broken = sleepy_flow(namespace, sleep="PT0.1S").replace("type: flow.Sleep", "type: flow.Slep")
    path.write_text(broken, encoding="utf-8")
    await eventually(
        lambda: any(
            "flow.Slep" in r.getMessage() or str(path) in r.getMessage() for r in caplog.records
        ),
        within=2,
        what="the broken file to be reported",
    )
    still = (await api.get(url)).json()
    assert still["revision"] == 2 and "PT0.2S" in still["source"]
    problems = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{path}:")]
    assert problems, [r.getMessage() for r in caplog.records]
    line, column = problems[0][len(str(path)) + 1 :].split(":")[:2]
    assert int(line) == 15 and int(column) == 11  # the "type:" value of tasks[1]

    path.unlink()

    async def removed() -> bool:
        return (await api.get(url)).status_code == 404

    await eventually(removed, within=2, what="the removed file's flow to go")
