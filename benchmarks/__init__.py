"""Kestrel's latency, throughput and scale benchmarks, with same-run baselines.

Run ``python -m benchmarks`` (or ``make bench``); see ``benchmarks/README.md``.
"""
