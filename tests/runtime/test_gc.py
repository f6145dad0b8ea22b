"""The garbage-collector settings of processes that run executions (actors/_gc.py)."""

from __future__ import annotations

import gc

from actors._gc import GEN0_THRESHOLD, tune_gc


def test_tune_gc_freezes_what_exists_and_spaces_out_young_collections() -> None:
    tune_gc()
    tune_gc()  # once per process: a second call changes nothing
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    assert gc.get_freeze_count() > 0
