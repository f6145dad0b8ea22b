"""The embedded default: initdb once, start once, shared by a second process."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
import pytest

from actors._embedded_postgres import EmbeddedPostgres, default_data_dir
from actors._store import Store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECOND_PROCESS = """
import asyncio, sys
from actors._embedded_postgres import EmbeddedPostgres

async def main() -> None:
    async with EmbeddedPostgres(sys.argv[1]) as pg:
        print(pg.port, pg.started_server, flush=True)

asyncio.run(main())
"""


async def test_a_second_process_finds_it_running_and_the_last_user_stops_it(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "pg"
    async with EmbeddedPostgres(data_dir) as pg:
        assert pg.started_server
        assert pg.dsn.endswith(f"127.0.0.1:{pg.port}/kestrel")
        async with Store(pg.dsn) as store:  # the one asyncpg code path, migrations included
            assert (await store.kv_set("ns", "k", 1)).value == 1
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SECOND_PROCESS,
            str(data_dir),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        assert out.decode().split() == [str(pg.port), "False"]
        conn = await asyncpg.connect(pg.dsn)  # still up: this process still uses it
        await conn.close()
        port = pg.port
    with pytest.raises(OSError):
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/kestrel", timeout=5)
    async with EmbeddedPostgres(data_dir) as again:  # data kept; no second initdb
        assert again.started_server
        async with Store(again.dsn) as store:
            entry = await store.kv_get("ns", "k")
            assert entry is not None and entry.value == 1


def test_the_default_data_dir_is_the_user_data_dir() -> None:
    assert default_data_dir().parts[-2:] == ("kestrel", "postgres")
