"""The REST API fuzzed from its own OpenAPI document (schemathesis), with auth on.

A real ``kestrel server`` runs in its own process (its own event loop, a real Postgres);
schemathesis' synchronous calls would deadlock a server sharing the test's loop. Every
operation gets a few generated requests, with the token and without it: no answer is a
5xx, and no body carries a traceback, ``ray::`` or an ANSI escape.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import KestrelServer, kestrel_server

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token-0123456789"
MAX_EXAMPLES = 4  # per operation: bounded, a few seconds for the whole API
FORBIDDEN = ("Traceback", "ray::", "\x1b[")


@pytest.fixture
def api_server(fresh_database: str, tmp_path: Path) -> Iterator[KestrelServer]:
    flows = tmp_path / "flows"
    flows.mkdir()
    with kestrel_server(
        fresh_database,
        flows,
        tmp_path / "server.log",
        auth=("--api-token", TOKEN),
        KESTREL_DATA_DIR=str(tmp_path / "data"),
    ) as server:
        yield server


def test_no_operation_answers_5xx_or_leaks_internals(api_server: KestrelServer) -> None:
    _regressions(api_server.base_url)
    schema = schemathesis.openapi.from_url(
        f"{api_server.base_url}/api/v1/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(), authed=st.booleans())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case, authed: bool) -> None:
            nonlocal calls
            headers = {"Authorization": f"Bearer {TOKEN}"} if authed else {}
            response = case.call(base_url=api_server.base_url, headers=headers, timeout=30)
            calls += 1
            where = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.text[:300]}")
            if not authed and response.status_code < 400 and case.path.startswith("/api/"):
                failures.append(f"{where} without a token")
            leaked = [marker for marker in FORBIDDEN if marker in response.text]
            if leaked:
                failures.append(f"{where} leaks {leaked}: {response.text[:300]}")

        fuzz()
    assert calls > 0
    assert failures == [], "\n".join(sorted(set(failures)))
    assert "Traceback" not in api_server.log.read_text()


def _regressions(url: str) -> None:
    """What the fuzz found, each a 500 before: out-of-range numbers or a NUL reached Postgres."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        huge = str(10**27)
        for path, params in [
            ("/api/v1/executions/search", {"page": huge}),
            ("/api/v1/flows/search", {"page": huge}),
            ("/api/v1/flows/ns/f", {"revision": str(2**31)}),
            ("/api/v1/logs/x/follow", {"since": str(2**63)}),
            ("/api/v1/stats/executions", {"namespace": "\x00"}),  # Postgres text has no NUL
        ]:
            answer = client.get(path, params=params)
            assert answer.status_code == 400, (path, answer.status_code, answer.text)
        follow = client.get(
            "/api/v1/logs/x/follow", headers={"Last-Event-ID": "\u00b2".encode("latin-1")}
        )
        assert follow.status_code == 404, follow.text  # not a 500 from int('²')
