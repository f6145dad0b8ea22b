"""Secure by default: no ``--api-token`` means a generated one, never an open API.

The first ``kestrel server`` writes a random token to its data dir (mode 0600), later
starts reuse it, the CLI on the same machine picks it up (for loopback servers only), and
an open API takes an explicit ``--no-auth``, which is logged.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway._api import create_app
from gateway._runtime import Runtime
from gateway._server import secure_settings
from gateway._settings import Settings
from gateway._token import local_token, token_path
from tests.polling import eventually_sync
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_first_start_generates_a_private_token_later_starts_reuse_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "kestrel.server")
    first = secure_settings(Settings(data_dir=tmp_path))
    path = token_path(tmp_path)
    assert first.api_token and path.read_text().strip() == first.api_token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated a new API token" in caplog.text and str(path) in caplog.text
    assert first.api_token not in caplog.text  # the file holds it, the log does not
    path.chmod(0o644)
    again = secure_settings(Settings(data_dir=tmp_path))
    assert again.api_token == first.api_token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    given = secure_settings(Settings(data_dir=tmp_path, api_token="mine"))
    assert given.api_token == "mine"


def test_no_auth_is_an_explicit_logged_choice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "kestrel.server")
    open_settings = secure_settings(Settings(data_dir=tmp_path, no_auth=True))
    assert open_settings.api_token is None and not token_path(tmp_path).exists()
    assert "authentication is OFF" in caplog.text
    with pytest.raises(ValueError, match="contradict"):
        secure_settings(Settings(no_auth=True, api_token="x"))
    with pytest.raises(ValueError, match="token"):
        create_app(Runtime(Settings()), Settings())  # an app is never open by omission


def test_cli_sends_the_local_token_to_loopback_servers_only(tmp_path: Path) -> None:
    token = secure_settings(Settings(data_dir=tmp_path)).api_token
    for url in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080"):
        assert local_token(url, tmp_path) == token
    for url in ("http://example.com:8080", "http://10.0.0.5:8080"):
        assert local_token(url, tmp_path) is None
    assert local_token("http://127.0.0.1:8080", tmp_path / "none") is None


def _kestrel(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


@pytest.mark.integration  # a real Postgres and a server process
def test_server_without_token_is_closed_and_the_cli_gets_in(
    fresh_database: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KESTREL_", "RAY_"))}
    env |= {
        "KESTREL_DATA_DIR": str(tmp_path / "data"),
        "KESTREL_SERVER": f"http://127.0.0.1:{port}",
    }
    flows = tmp_path / "flows"
    flows.mkdir()
    log = tmp_path / "server.log"
    argv = ["server", "--db", fresh_database, "--port", str(port), "--flows", str(flows)]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            healthy: Callable[[], bool] = lambda: _healthy(client, process, log)  # noqa: E731
            eventually_sync(healthy, within=120, what="server up")
            assert client.get("/api/v1/flows/search").status_code == 401
            token = token_path(tmp_path / "data").read_text().strip()
            auth = {"Authorization": f"Bearer {token}"}
            assert client.get("/api/v1/flows/search", headers=auth).status_code == 200
        printed = _kestrel(env, "token")
        assert printed.returncode == 0 and printed.stdout.strip() == token
        listed = _kestrel(env, "flow", "list")
        assert listed.returncode == 0, listed.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    text = log.read_text()
    assert "generated a new API token" in text and token not in text
    assert "Traceback" not in text


def _healthy(client: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> bool:
    assert process.poll() is None, log.read_text()
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False
