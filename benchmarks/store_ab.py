"""Store writes, before vs after a change, in the same run: alternating rounds, medians.

    git worktree add --detach /tmp/kestrel-before main      # the code to compare against
    python -m benchmarks.store_ab --before /tmp/kestrel-before [--after .] [--rounds 5]

One durable embedded PostgreSQL serves every round (or ``--dsn``). Each round runs
`store_bench.py` (this tree's harness, so both sides run the same scenarios) once with
``PYTHONPATH`` on the *before* tree's packages and once on the *after* tree's, in
alternating order (before first in even rounds), each in its own process on fresh
databases. On a shared or noisy machine single runs mislead: compare the medians, and
read the spread. Writes ``<out>/store_ab.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from actors import EmbeddedPostgres

HERE = Path(__file__).resolve().parent
DEFAULT_SCENARIOS = "history_batched,transition_batched,create_batched,create_lone"
FIGURES = ("ops_per_s", "p50_ms", "p99_ms", "client_cpu_ms_per_op", "server_cpu_ms_per_op")


def _side(tree: Path, admin_dsn: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One run of the harness against ``tree``'s packages; its report."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [
        sys.executable,
        str(HERE / "store_bench.py"),
        "--dsn",
        admin_dsn,
        "--ops",
        str(args.ops),
        "--scenarios",
        args.scenarios,
        "--out",
        str(out),
    ]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, cwd=tree)
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def _medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    by_scenario: dict[str, dict[str, list[float]]] = {}
    for report in runs:
        for r in report["results"]:
            figures = by_scenario.setdefault(r["scenario"], {f: [] for f in FIGURES})
            for f in FIGURES:
                if r.get(f) is not None:
                    figures[f].append(float(r[f]))
    return {
        name: {f: round(statistics.median(v), 4) if v else None for f, v in figures.items()}
        | {f"{f}_all": v for f, v in figures.items()}  # type: ignore[misc]
        for name, figures in by_scenario.items()
    }


def compare(admin_dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    sides = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kestrel-store-ab-") as tmp:
        for round_ in range(args.rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for side in order:
                out = Path(tmp) / f"{side}-{round_}.json"
                runs[side].append(_side(sides[side], admin_dsn, args, out))
                loads.append(os.getloadavg()[0])
                print(f"  round {round_ + 1}/{args.rounds}: {side} done", flush=True)
    medians = {side: _medians(reports) for side, reports in runs.items()}
    return {
        "benchmark": "store_ab",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "trees": {side: str(path) for side, path in sides.items()},
        "commits": {side: _commit(path) for side, path in sides.items()},
        "rounds": args.rounds,
        "ops": args.ops,
        "postgres": runs["after"][0].get("postgres") if runs["after"] else None,
        "load_average_1min": {"min": min(loads), "max": max(loads)},
        "medians": medians,
    }


def _commit(tree: Path) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


def table(report: dict[str, Any]) -> str:
    """Median of each figure per scenario, before | after | after / before."""
    before, after = report["medians"]["before"], report["medians"]["after"]
    lines = [
        f"{'scenario':<22}{'figure':<22}{'before':>10}{'after':>10}{'after/before':>14}",
        "-" * 78,
    ]
    for name in after:
        for f in FIGURES:
            b, a = before[name][f], after[name][f]
            if a is None or b is None:
                continue
            ratio = f"{a / b:.2f}" if b else "—"
            lines.append(f"{name:<22}{f:<22}{b:>10.3f}{a:>10.3f}{ratio:>14}")
    load = report["load_average_1min"]
    lines.append(
        f"medians of {report['rounds']} alternating rounds; 1-min load average "
        f"{load['min']:.1f} to {load['max']:.1f}"
    )
    return "\n".join(lines)


async def _embedded(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kestrel-store-ab-pg-") as tmp:
        async with EmbeddedPostgres(Path(tmp) / "pg") as pg:
            return await asyncio.to_thread(compare, pg.admin_dsn, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="tree with the code to compare against")
    parser.add_argument("--after", default=str(HERE.parent), help="tree with the new code")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=2000, help="writes per scenario and run")
    parser.add_argument("--scenarios", default=DEFAULT_SCENARIOS)
    parser.add_argument("--dsn", help="admin DSN of a server (default: embedded, durable)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    report = compare(args.dsn, args) if args.dsn else asyncio.run(_embedded(args))
    print(table(report))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "store_ab.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
