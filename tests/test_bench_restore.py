"""``bench.restore`` restores every series it checkpointed and prints its figures."""

from __future__ import annotations

from tests.bench_runs import bench_figures


def test_bench_restore_prints_a_restore_of_every_series_it_checkpointed() -> None:
    figures = bench_figures("bench.restore", "--sensors", "20", "--history", "40", "--repeat", "1")
    assert figures["sensors"] == 20  # the bench asserts each was restored (engine.known)
    assert figures["deltas_max"] >= 1  # a restore replays points, not snapshots alone
    assert figures["restore_us_per_series"] > figures["of_which_detector_rebuild_us"] > 0
