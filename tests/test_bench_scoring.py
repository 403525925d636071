"""``bench.scoring`` times batches of series that first learned ``--history`` readings, and says so."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_scoring_prints_its_figures_for_series_with_a_history() -> None:
    args = ["--sensors", "30", "--points", "2", "--batches", "2", "--history", "60"]
    command = [sys.executable, "-m", "bench.scoring", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["sensors"], figures["points_per_sensor"], figures["history"]) == (30, 2, 60)
    assert figures["timed_batches"] == 2 and figures["kind_model"] is True
    assert figures["ms_per_batch"] > 0 and figures["points_per_s"] > 0
