"""Tables: our figure | same-run baseline | target, as text and as Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import _machine

LOW_LATENCY = {"nats", "jetstream", "mqtt", "pg-notify", "webhook"}
TARGET_P50_MS = 5.0
TARGET_P99_MS = 25.0
TARGET_KAFKA_ABOVE_RAW_MS = 5.0
TARGET_RATIO = 2.0
TARGET_RATE = 1000.0
TARGET_MEMORY_GIB = 1.0
TARGET_IDLE_CPU_PCT = 3.0


def _ms(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f}"


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" ✓" if ok else " ✗")


def _latency_target(key: str, result: dict[str, Any]) -> tuple[str, bool | None]:
    """The target that applies (docs/architecture.md), with a mark per bound."""
    ours = result["event_to_first_task"]
    p50, p99 = ours["p50"], ours["p99"]
    if key in LOW_LATENCY and p50 is not None and p99 is not None:
        ok50, ok99 = p50 <= TARGET_P50_MS, p99 <= TARGET_P99_MS
        text = f"p50 ≤ {TARGET_P50_MS:g}{_mark(ok50)}, p99 ≤ {TARGET_P99_MS:g}{_mark(ok99)}"
        return text, None
    if key == "kafka":
        raw = result["baseline"].get("p50")
        if raw is None or p50 is None:
            return "p50 ≤ raw + 5", None
        limit = raw + TARGET_KAFKA_ABOVE_RAW_MS
        return f"p50 ≤ raw + 5 = {limit:.1f}", p50 <= limit
    return "— (no target)", None


def latency_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, r in report["sources"].items():
        first, created, base = r["event_to_first_task"], r["event_to_created"], r["baseline"]
        target, ok = _latency_target(key, r)
        ratio = r.get("ratio_p50_to_broker_plus_ray_task")
        ratio_ok = None if ratio is None else ratio <= TARGET_RATIO
        ratio_rt = r.get("ratio_p50_to_broker_plus_ray_task_round_trip")
        rows.append([
            r["label"],
            f"{_ms(first['p50'])} / {_ms(first['p90'])} / {_ms(first['p99'])} / "
            f"{_ms(first['max'])}",
            f"{_ms(created['p50'])} / {_ms(created['p99'])}",
            f"{_ms(base['p50'])} / {_ms(base['p99'])}",
            f"{ratio if ratio is not None else '—'}{_mark(ratio_ok)} (≤ {TARGET_RATIO:g})",
            "—" if ratio_rt is None else f"{ratio_rt}",
            f"{target}{_mark(ok)}",
        ])  # fmt: skip
    return rows


LATENCY_HEADER = [
    "source",
    "event → first task started, ms p50 / p90 / p99 / max",
    "event → created, ms p50 / p99",
    "raw broker round trip, ms p50 / p99",
    "ratio p50 / (broker + Ray task submit → body start)",
    "same, Ray task submit → result",
    "target (ms)",
]


SEGMENT_HEADER = [
    "source",
    "event → created_at",
    "created_at → execution RUNNING (commit)",
    "→ task run RUNNING (interpreter)",
    "→ task body started (call to warm worker)",
]


def segment_rows(report: dict[str, Any]) -> list[list[str]]:
    """p50 / p99 (ms) of each hop between the stored timestamps."""
    rows = []
    for r in report["sources"].values():
        cells = [f"{_ms(v['p50'])} / {_ms(v['p99'])}" for v in r["segments"].values()]
        rows.append([r["label"], *cells])
    return rows


def profile_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for r in report["sources"].values():
        profile = r.get("profile") or {}
        summary = profile.get("summary")
        if not summary:
            if profile.get("error"):
                lines.append(f"py-spy on the {r['label']} host: {profile['error']}")
            continue
        libs = ", ".join(f"{x['name']} {100 * x['share']:.0f} %" for x in summary["by_library"][:6])
        lines.append(
            f"py-spy, {r['label']} host at {profile['rate']:g} events/s: "
            f"{summary.get('gil_cpu_ms_per_event', '?')} ms of Python CPU (GIL held) per event; "
            f"by library: {libs}."
        )
    return lines


def baseline_rows(report: dict[str, Any]) -> list[list[str]]:
    names = {
        "ray_task_start": "Ray task, submit → body start (in an actor)",
        "ray_task_round_trip": "Ray task, submit → result (in an actor)",
        "ray_actor_call_start": "Ray actor call → method start (in an actor)",
        "ray_actor_call_round_trip": "Ray actor call → result (in an actor)",
        "pg_insert_commit_in_actor": "Postgres INSERT commit, paced (in an actor)",
        "pg_insert_commit_serial": "Postgres INSERT commit, back to back (driver)",
    }
    return [
        [names.get(k, k), _ms(v.get("p50")), _ms(v.get("p99"))]
        for k, v in report["baselines"].items()
    ]


def throughput_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for source in report["sources"].values():
        for step in source["steps"]:
            rows.append([
                source["label"], f"{step['offered_per_s']:.0f}", f"{step['created_per_s']:.0f}",
                f"{step['ended_per_s']:.0f}", _ms(step["event_to_first_task"]["p50"]),
                _ms(step["event_to_first_task"]["p99"]),
                "yes" if step["sustained"] else f"no ({step['why']})",
            ])  # fmt: skip
    return rows


def curve_rows(report: dict[str, Any]) -> list[list[str]]:
    """p50 / p99 event → first task started at each offered rate, sustained or not."""
    rows = []
    for source in report["sources"].values():
        for step in source["steps"]:
            first = step["event_to_first_task"]
            rows.append([
                source["label"], f"{step['target_per_s']:g}", f"{step['offered_per_s']:.0f}",
                f"{step['ended_per_s']:.0f}", _ms(first["p50"]), _ms(first["p99"]),
                "yes" if step["sustained"] else f"no ({step['why']})",
            ])  # fmt: skip
    return rows


CURVE_HEADER = [
    "source", "rate/s", "offered/s", "ended/s", "p50 ms", "p99 ms", "sustained",
]  # fmt: skip


THROUGHPUT_HEADER = [
    "source", "offered/s", "created/s", "ended/s", "p50 ms", "p99 ms", "sustained",
]  # fmt: skip


def _idle_context(cpu: dict[str, Any]) -> str:
    """Servers' idle CPU, and other Ray workers' (idle pool, earlier parts) when any."""
    text = f"brokers + Postgres {cpu['servers_pct']:.1f}"
    other = cpu.get("other_ray_workers_pct")  # absent in reports before it was split out
    return text if not other else f"{text}; other Ray workers {other:.1f}"


def triggers_rows(report: dict[str, Any]) -> list[list[str]]:
    mem = report["memory"]
    cpu = report["idle_cpu"]
    gib = mem["extra_rss_bytes"] / 2**30
    uss = mem["extra_uss_bytes"] / 2**30
    cpu_ok = _mark(cpu["ours_pct"] <= TARGET_IDLE_CPU_PCT)
    mix = ", ".join(f"{v} {k}" for k, v in report["mix"].items())
    rows = [
        ["triggers deployed / RUNNING", f"{report['deployed']} / {report['running']}",
         mix, "all RUNNING" + _mark(report["running"] == report["deployed"])],
        ["extra RSS of Ray worker processes", f"{gib:.2f} GiB ({uss:.2f} GiB USS)",
         f"{mem['before_rss_bytes'] / 2**30:.2f} GiB before",
         f"≤ {TARGET_MEMORY_GIB:g} GiB" + _mark(gib <= TARGET_MEMORY_GIB)],
        ["Ray worker processes", f"{mem['after_processes']}", f"{mem['before_processes']} before",
         ""],
        [f"idle CPU, hosts + warm workers (% of one core, {cpu['window_s']:.0f} s, "
         f"{report['options'].get('settle_seconds', 0):g} s after all RUNNING)",
         f"{cpu['ours_pct']:.1f}", _idle_context(cpu),
         f"≤ {TARGET_IDLE_CPU_PCT:g}" + cpu_ok],
    ]  # fmt: skip
    no_kafka = report.get("idle_cpu_without_kafka")
    if no_kafka:
        ok = _mark(no_kafka["ours_pct"] <= TARGET_IDLE_CPU_PCT)
        rows.append([
            f"same, Kafka triggers undeployed ({no_kafka['triggers']} left)",
            f"{no_kafka['ours_pct']:.1f}", _idle_context(no_kafka),
            f"(≤ {TARGET_IDLE_CPU_PCT:g}){ok}",
        ])  # fmt: skip
    return rows


TRIGGERS_HEADER = ["measure", "ours", "baseline / context", "target"]


def store_rows(report: dict[str, Any]) -> list[list[str]]:
    return [
        [r["scenario"], str(r["ops"]), f"{r['ops_per_s']:.0f}", _ms(r["p50_ms"]), _ms(r["p99_ms"])]
        for r in report["results"]
    ]


STORE_HEADER = ["scenario", "ops", "ops/s", "p50 ms", "p99 ms"]

PEER_HEADER = ["measure", "Celery + Redis (not durable)", "ours (durable)", "ours / Celery"]


def _ratio(ours: float | None, peer: float | None) -> str:
    return "—" if ours is None or not peer else f"{ours / peer:.2f}"


def peer_rows(report: dict[str, Any], ours: dict[str, Any]) -> list[list[str]]:
    """Celery's figures beside ours (``ours``: latency and throughput reports, if any)."""
    lat, thr = report["latency"], report["throughput"]
    rows = []
    latency = ours.get("latency") or {}
    sources = latency.get("sources", {})
    for key in ("nats", "jetstream", "mqtt", "pg-notify", "webhook", "kafka"):
        if key not in sources:
            continue
        first = sources[key]["event_to_first_task"]
        rows.append([
            f"p50 / p99 ms: apply_async → body start | {sources[key]['label']} event → "
            "first task started",
            f"{_ms(lat['p50'])} / {_ms(lat['p99'])}",
            f"{_ms(first['p50'])} / {_ms(first['p99'])}",
            f"{_ratio(first['p50'], lat['p50'])} / {_ratio(first['p99'], lat['p99'])}",
        ])  # fmt: skip
    if not rows:
        rows.append([
            "p50 / p99 ms: apply_async → body start",
            f"{_ms(lat['p50'])} / {_ms(lat['p99'])}", "— (no latency.json)", "—",
        ])  # fmt: skip
    best = None
    for source in (ours.get("throughput") or {}).get("sources", {}).values():
        best = max(best or 0.0, source.get("max_sustained_per_s") or 0.0)
    rows.append([
        "tasks (executions) per second",
        f"{thr['tasks_per_s']:.0f} (burst of {thr['tasks']}; "
        f"producer {thr['producer_per_s']:.0f}/s)",
        "— (no throughput.json)" if best is None else f"{best:.0f} (highest sustained)",
        _ratio(best, thr["tasks_per_s"]),
    ])  # fmt: skip
    return rows


def _text(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))
    out = [line, "-" * len(line)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(out)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _sections(part: str, report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    if part == "latency":
        return [
            ("Latency", LATENCY_HEADER, latency_rows(report)),
            ("Where the time goes (ms, p50 / p99)", SEGMENT_HEADER, segment_rows(report)),
            ("Same-run baselines (ms)", ["baseline", "p50", "p99"], baseline_rows(report)),
        ]
    if part == "throughput":
        return [("Throughput", THROUGHPUT_HEADER, throughput_rows(report))]
    if part == "scaleout":
        title = "Throughput scaled out: two Ray nodes, two gateways"
        return [(title, THROUGHPUT_HEADER, throughput_rows(report))]
    if part == "curve":
        return [("Latency versus offered rate", CURVE_HEADER, curve_rows(report))]
    if part == "triggers":
        return [(f"{report['deployed']:,} idle triggers", TRIGGERS_HEADER, triggers_rows(report))]
    if part == "store":
        return [("Store writes", STORE_HEADER, store_rows(report))]
    if part == "celery":
        title = "Same-run peer: Celery + Redis"
        return [(title, PEER_HEADER, peer_rows(report, report.get("ours", {})))]
    return []


def attach_ours(report: dict[str, Any], out: Path) -> dict[str, Any]:
    """The Celery report with our latency and throughput reports in ``out`` beside it."""
    ours = {
        part: json.loads(path.read_text())
        for part in ("latency", "throughput")
        if (path := out / f"{part}.json").exists()
    }
    return {**report, "ours": ours}


def table(part: str, report: dict[str, Any]) -> str:
    """A readable text table of one part's results."""
    blocks = [f"\n== {title} ==\n{_text(h, rows)}" for title, h, rows in _sections(part, report)]
    extra = _headline(part, report)
    return "\n".join(blocks) + (f"\n{extra}" if extra else "")


def _headline(part: str, report: dict[str, Any]) -> str:
    if part == "latency":
        return "\n".join(profile_lines(report))
    if part == "celery":
        whens = [
            f"{name} of {ours.get('machine', {}).get('when', '?')}"
            for name, ours in report.get("ours", {}).items()
            if ours
        ]
        load = report.get("load_average_before_after")
        return (
            f"Celery measured {report.get('machine', {}).get('when', '?')} (1-min load "
            f"{load}); ours from {', '.join(whens) or 'no report'}: same run only when "
            "`python -m benchmarks` ran every part."
        )
    if part == "throughput":
        lines = []
        for source in report["sources"].values():
            best = source.get("max_sustained_per_s")
            ok = _mark(best is not None and best >= TARGET_RATE)
            lines.append(
                f"{source['label']}: highest sustained {best or 0:.0f} executions/s "
                f"(target ≥ {TARGET_RATE:g}){ok}"
            )
        return "\n".join(lines)
    if part == "scaleout":
        return "\n".join(
            f"{topology}: highest sustained {figures.get('max_sustained_per_s') or 0:.0f} "
            f"executions/s; listeners {', '.join(sorted(set(figures.get('slots', {}).values())))}"
            for topology, figures in report["sources"].items()
        )
    return ""


def summary(out: Path) -> str:
    """Markdown of every ``<part>.json`` in `out` (what README.md's table is made from)."""
    parts = []
    machine = None
    reports = {
        part: json.loads(path.read_text())
        for part in ("latency", "throughput", "scaleout", "curve", "triggers", "store", "celery")
        if (path := out / f"{part}.json").exists()
    }
    for part, report in reports.items():
        if part == "celery":
            report["ours"] = {k: reports[k] for k in ("latency", "throughput") if k in reports}
        machine = machine or report.get("machine")
        quick = " (quick mode)" if report.get("quick") else ""
        for title, header, rows in _sections(part, report):
            parts.append(f"### {title}{quick}\n\n{_markdown(header, rows)}\n")
        headline = _headline(part, report)
        if headline:
            parts.append(headline + "\n")
    head = "## Results\n\n"
    if machine:
        head += (
            f"Machine: {_machine.describe(machine)}. Commit `{machine.get('git_commit')}`, "
            f"{machine.get('when')}.\n\n"
        )
    return head + "\n".join(parts)
