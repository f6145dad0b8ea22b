"""``kestrel server`` on a port that is taken: one line, exit code 2, nothing started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from gateway._ports import port_problem

ROOT = Path(__file__).resolve().parents[2]


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert port_problem("127.0.0.1", port) is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KESTREL_", "RAY_"))}
        # An unreachable database: had the server got as far as Postgres, it would say so.
        db = "postgresql://kestrel:pw@127.0.0.1:1/nowhere"
        ran = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "server", "--port", str(port), "--db", db],
            cwd=ROOT,
            env={**env, "KESTREL_FLOWS": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert ran.returncode == 2, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert lines == [
        f"kestrel server: port {port} on 127.0.0.1 is already in use (choose another with --port)"
    ]
    assert ran.stdout == ""


def test_a_free_port_is_no_problem() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert port_problem("127.0.0.1", port) is None
