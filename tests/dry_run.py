"""What ``make TARGET`` would run, without running it: the one ``make -n`` helper of the tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_dry_run(target: str, venv: Path) -> str:
    """The commands ``make -n TARGET`` prints, with a fresh venv path.

    The fresh venv path makes make show every step a machine with nothing would run. It
    runs as a top-level make: CI's ``make test`` runs the tests inside make, whose
    MAKELEVEL/MAKEFLAGS would add "Entering directory" lines and pass flags down.

    Args:
        target: The Makefile target.
        venv: A venv path that does not exist yet.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout
