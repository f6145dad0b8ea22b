"""``kestrel server`` and ``kestrel run`` as real processes leave nothing behind.

A taken port is refused before anything starts; Ctrl-C stops every process the server
started (Ray's and the embedded Postgres); ``kestrel run`` uses a throwaway database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.polling import eventually_sync
from tests.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KESTREL = str(Path(sys.executable).parent / "kestrel")  # the console script
CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdnjs", "fastapi.tiangolo.com")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A fresh folder in /tmp (short paths; no 0700 parent the postgres user can't cross)."""
    folder = Path(tempfile.mkdtemp(prefix="kestrel-life-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KESTREL_", "RAY_"))}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # the embedded Postgres' default home
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env


def _kestrel(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", *args]


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_taken_port_is_one_line_and_exit_2_before_postgres_and_ray(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            _kestrel("server", "--port", str(port), "--data-dir", str(tmp_path / "data")),
            cwd=ROOT,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port} is already in use" in lines[0]
    assert "Task exception was never retrieved" not in result.stderr
    assert not (tmp_path / "data").exists()  # Postgres never started
    assert not (tmp_path / "xdg").exists()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path, Path]]:
    """A ``kestrel server`` in its own session: (process, base URL, data dir, log).

    It runs as a user would: the console script, in a project folder whose ``./flows``
    (the default flows folder) holds a flow.
    """
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(ROOT / "examples" / "hello.yaml", flows / "hello.yaml")
    data = tmp_path / "data"
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [KESTREL, "server", "--port", str(port), "--data-dir", str(data)],
            cwd=tmp_path,
            env=_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:
        yield process, f"http://127.0.0.1:{port}", data, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        pid = _postmaster_pid(data)
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, signal.SIGQUIT)  # the Postgres this test started


def _healthy(process: subprocess.Popen[bytes], base: str, log: Path) -> bool:
    assert process.poll() is None, log.read_text()
    try:
        return httpx.get(f"{base}/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_ctrl_c_stops_every_process_of_the_server(
    server: tuple[subprocess.Popen[bytes], str, Path, Path],
) -> None:
    process, base, data, log = server
    eventually_sync(lambda: _healthy(process, base, log), within=120, what="server healthy")

    # /docs works offline: its assets are served here, from no CDN.
    token = (data / "api-token").read_text().strip()  # generated: secure by default
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=10, headers=auth) as client:
        deployed = eventually_sync(
            lambda: client.get("/api/v1/flows/kestrel.examples/hello").status_code == 200,
            what="./flows/hello.yaml deployed",
        )
        assert deployed
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert not [host for host in CDN_HOSTS if host in docs.text], docs.text
        assert "/docs-assets/swagger-ui-bundle.js" in docs.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert client.get(f"/docs-assets/{asset}").status_code == 200
        for spec in ("/openapi.json", "/api/v1/openapi.json"):
            assert client.get(spec).json()["info"]["title"] == "Kestrel"

    postgres_pid = _postmaster_pid(data)
    assert postgres_pid is not None
    postgres = psutil.Process(postgres_pid)
    tree = [*psutil.Process(process.pid).children(recursive=True), postgres]
    tree += postgres.children(recursive=True)
    names = {p.name() for p in tree}
    assert {"raylet", "gcs_server", "postgres"} <= names, names
    # Ray's token authentication stays on (only its notice about that is silenced).
    raylet = next(p for p in tree if p.name() == "raylet")
    assert raylet.environ().get("RAY_AUTH_MODE") == "token"

    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert process.wait(120) == 0, log.read_text()
    survivors = eventually_sync(
        lambda: not [p for p in tree if _alive(p)] or None,
        within=60,
        what="every process of the server gone",
    )
    assert survivors
    text = log.read_text()
    assert "Token authentication" not in text, text
    assert "Traceback" not in text, text
    assert "bye" in text


def test_kestrel_run_uses_a_throwaway_store(tmp_path: Path) -> None:
    env = _env(tmp_path)
    result = subprocess.run(
        _kestrel("run", "examples/hello.yaml", "--json"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"state": "SUCCESS"' in result.stdout
    assert not (tmp_path / "xdg").exists()  # the user's own store was never touched
    assert not list((tmp_path / "tmp").glob("kestrel-run-*"))  # the throwaway one is gone

    kept = tmp_path / "kept"
    result = subprocess.run(
        _kestrel("run", "examples/hello.yaml", "--data-dir", str(kept)),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (kept / "postgres" / "data" / "PG_VERSION").exists()
    assert _postmaster_pid(kept) is None  # stopped with the run, its data kept


@pytest.mark.parametrize(("flag", "kept"), [([], False), (["--keep-db"], True)])
def test_keep_db_is_off_unless_asked(
    flag: list[str], kept: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import _server
    from gateway.cli import main

    seen: list[Any] = []

    async def serve(settings: Any) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(_server, "serve", serve)
    monkeypatch.setattr(_server, "configure_logging", lambda settings: None)
    assert main(["server", "--data-dir", str(tmp_path), *flag]) == 0
    assert seen[0].keep_db is kept
    assert seen[0].data_dir == tmp_path


async def test_a_kept_embedded_postgres_outlives_its_last_user(tmp_path: Path) -> None:
    from actors import EmbeddedPostgres

    kept = EmbeddedPostgres(tmp_path / "postgres", keep_running=True)
    async with kept:
        pid = _postmaster_pid(tmp_path)
    assert pid is not None and psutil.pid_exists(pid)
    async with EmbeddedPostgres(tmp_path / "postgres") as again:  # finds it, then stops it
        assert not again.started_server
    eventually_sync(lambda: not psutil.pid_exists(pid), within=30, what="postgres stopped")
