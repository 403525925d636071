"""``bench.scoring`` times batches of series that first learned ``--history`` readings, and says so."""

from __future__ import annotations

from tests.bench_runs import bench_figures


def test_bench_scoring_prints_its_figures_for_series_with_a_history() -> None:
    args = ["--sensors", "30", "--points", "2", "--batches", "2", "--history", "60"]
    figures = bench_figures("bench.scoring", *args)
    assert (figures["sensors"], figures["points_per_sensor"], figures["history"]) == (30, 2, 60)
    assert figures["timed_batches"] == 2 and figures["kind_model"] is True
    assert figures["ms_per_batch"] > 0 and figures["points_per_s"] > 0
