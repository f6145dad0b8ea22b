"""PNG plots of the results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(part: str, report: dict[str, Any], out: Path) -> list[Path]:
    """Write the plots of one part; returns their paths (none if matplotlib is missing)."""
    try:
        plt = _pyplot()
    except ImportError:
        return []
    if part == "latency":
        return [_latency(plt, report, out)]
    if part == "throughput":
        return [_throughput(plt, report, out)]
    return []


def _latency(plt: Any, report: dict[str, Any], out: Path) -> Path:
    sources = report["sources"]
    labels = [r["label"] for r in sources.values()]
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.2
    metrics = [
        ("event_to_first_task", "p50", "ours p50"),
        ("event_to_first_task", "p99", "ours p99"),
        ("baseline", "p50", "raw broker p50"),
        ("baseline", "p99", "raw broker p99"),
    ]
    for i, (field, pct, name) in enumerate(metrics):
        values = [(r[field].get(pct) or 0) for r in sources.values()]
        ax.bar([x + (i - 1.5) * width for x in range(len(labels))], values, width, label=name)
    ax.axhline(5, color="green", linestyle="--", linewidth=1, label="target p50 (5 ms)")
    ax.axhline(25, color="red", linestyle="--", linewidth=1, label="target p99 (25 ms)")
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.set_title("Event → first runnable task started, vs the raw broker round trip")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _throughput(plt: Any, report: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for source in report["sources"].values():
        steps = source["steps"]
        rates = [s["offered_per_s"] for s in steps]
        ax.plot(rates, [s["event_to_first_task"]["p50"] for s in steps], "o-",
                label=f"{source['label']} p50")  # fmt: skip
        ax.plot(rates, [s["event_to_first_task"]["p99"] for s in steps], "s--",
                label=f"{source['label']} p99")  # fmt: skip
    ax.axhline(1000, color="red", linestyle=":", linewidth=1, label="p99 limit (1 s)")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("event → first task started, ms")
    ax.set_yscale("log")
    ax.set_title("Latency as the rate rises")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
