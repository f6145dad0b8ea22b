"""``python -m benchmarks [latency|throughput|triggers|store|all] [options]``.

Starts its own servers (durable embedded Postgres, NATS, MQTT, Kafka as needed) and a
local Ray (2 CPUs, no dashboard, loopback), runs the parts asked for, prints a table
(our figure | baseline | target) and writes ``<out>/<part>.json``, PNG plots and
``<out>/summary.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import _latency, _machine, _plots, _report, _scaleout, _throughput, _triggers_scale
from ._servers import BROKER_OF_SOURCE, Brokers, Postgres, brokers, postgres
from ._sources import SOURCES

PARTS = ("latency", "throughput", "scaleout", "triggers", "store", "celery", "curve")
RESULTS = Path(__file__).resolve().parent / "results"


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("part", nargs="?", default="all", choices=(*PARTS, "all"))
    parser.add_argument("--sources", type=_csv, help=f"latency: any of {','.join(SOURCES)}; "
                        "throughput: jetstream (default) and/or mqtt")  # fmt: skip
    parser.add_argument("--events", type=int, help="latency, celery: measured events per source")
    parser.add_argument("--warmup", type=int, help="latency: warm-up events per source")
    parser.add_argument("--rate", type=float, help="latency, celery: events per second")
    parser.add_argument("--quick", action="store_true", help="small runs (smoke tests)")
    parser.add_argument(
        "--profile",
        help="latency: source whose host py-spy samples ('' none; default nats, none --quick)",
    )
    parser.add_argument(
        "--rates", type=_csv, help="throughput, scaleout: offered rates, e.g. 100,500"
    )
    parser.add_argument("--step-seconds", type=float, help="throughput, scaleout: seconds per rate")
    parser.add_argument(
        "--topologies",
        type=_csv,
        help=f"scaleout: any of {','.join(_scaleout.TOPOLOGIES)} (default: both)",
    )
    parser.add_argument("--triggers", type=int, help="triggers: how many to deploy")
    parser.add_argument("--hosts", type=int, help="triggers: listener hosts")
    parser.add_argument("--idle-seconds", type=float, help="triggers: idle CPU window")
    parser.add_argument("--ops", type=int, default=3000, help="store: writes per scenario")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    return parser.parse_args(argv)


def _parts(args: argparse.Namespace) -> list[str]:
    return list(PARTS) if args.part == "all" else [args.part]


def _latency_sources(args: argparse.Namespace) -> list[str]:
    if args.part == "latency" and args.sources:
        unknown = set(args.sources) - set(SOURCES)
        if unknown:
            raise SystemExit(f"unknown sources {sorted(unknown)}; choose from {list(SOURCES)}")
        return list(args.sources)
    return list(SOURCES)


def _needed(args: argparse.Namespace) -> set[str]:
    needed: set[str] = set()
    parts = _parts(args)
    if "latency" in parts:
        needed |= {b for s in _latency_sources(args) if (b := BROKER_OF_SOURCE[s])}
    if "throughput" in parts or "curve" in parts:
        needed |= {"mqtt" if s == "mqtt" else "nats" for s in _throughput_sources(args)}
    if "scaleout" in parts:
        needed.add("nats")
    if "triggers" in parts:
        needed |= {"nats", "mqtt", "kafka"}
    return needed


def _throughput_sources(args: argparse.Namespace) -> list[str]:
    if args.part in ("throughput", "curve") and args.sources:
        return list(args.sources)
    return ["jetstream"]


def _latency_options(args: argparse.Namespace) -> _latency.LatencyOptions:
    opts = _latency.LatencyOptions.quick() if args.quick else _latency.LatencyOptions()
    if args.events is not None:
        opts.events = args.events
    if args.warmup is not None:
        opts.warmup = args.warmup
    if args.rate is not None:
        opts.rate = args.rate
    if args.profile is not None:
        opts.profile = args.profile or None
    return opts


def _write(out: Path, name: str, report: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


async def _part(
    part: str, found: Brokers, pg: Postgres, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    if part == "latency":
        opts = _latency_options(args)
        return await _latency.run(found, pg, _latency_sources(args), opts, out)
    if part == "throughput":
        topts = _throughput.ThroughputOptions.from_args(args)
        return await _throughput.run(found, pg, _throughput_sources(args), topts)
    if part == "scaleout":
        topologies = args.topologies or list(_scaleout.TOPOLOGIES)
        unknown = set(topologies) - set(_scaleout.TOPOLOGIES)
        if unknown:
            raise SystemExit(f"unknown topologies {sorted(unknown)}: {_scaleout.TOPOLOGIES}")
        xopts = _throughput.ThroughputOptions.from_args(args)
        return await _scaleout.run(found, pg, topologies, xopts)
    if part == "curve":
        copts = _throughput.ThroughputOptions.curve(args)
        return await _throughput.run(found, pg, _throughput_sources(args), copts)
    if part == "triggers":
        sopts = _triggers_scale.ScaleOptions.from_args(args)
        return await _triggers_scale.run(found, pg, sopts)
    if part == "celery":
        from . import _celery

        popts = _celery.PeerOptions.quick() if args.quick else _celery.PeerOptions()
        if args.events is not None:
            popts.events = args.events
        if args.rate is not None:
            popts.rate = args.rate
        return await asyncio.to_thread(_celery.run, popts)
    from .store_bench import bench

    ops = 300 if args.quick else args.ops
    return await bench(pg.admin_dsn, ops, concurrency=64, pool=10)


async def _run(found: Brokers, args: argparse.Namespace) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    async with postgres() as pg:
        machine = _machine.machine(pg.version)
        print(_machine.describe(machine), flush=True)
        for part in _parts(args):
            started, load_before = time.monotonic(), os.getloadavg()
            report = await _part(part, found, pg, args, out)
            report = {
                "benchmark": part,
                **report,
                "machine": machine,
                "postgres": pg.settings,
                "parameters": {k: str(v) for k, v in vars(args).items()},
                "quick": args.quick,
                "seconds": round(time.monotonic() - started, 1),
                # Other work on the machine skews every figure: 1-minute load averages.
                "load_average_before_after": [
                    round(load_before[0], 2),
                    round(os.getloadavg()[0], 2),
                ],
            }
            _write(out, part, report)
            report["plots"] = [str(p) for p in _plots.plot(part, report, out)]
            _write(out, part, report)
            if part == "celery":
                report = _report.attach_ours(report, out)
            print(_report.table(part, report), flush=True)
    summary = _report.summary(out)
    (out / "summary.md").write_text(summary)
    print(f"wrote {out / 'summary.md'}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with brokers(_needed(args)) as found:
        asyncio.run(_run(found, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
