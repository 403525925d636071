"""``bench.machine_speed`` does its fixed work in full and prints the machine's speed on it."""

from __future__ import annotations

import pytest

from bench.machine_speed import main
from tests.bench_runs import bench_figures


def test_machine_speed_validates_and_scores_every_reading_of_each_round() -> None:
    figures = bench_figures("bench.machine_speed", "--sensors", "30", "--points", "4", "--rounds", "2")
    assert figures["readings_per_round"] == 30 * 4
    assert figures["us_per_reading"] > 0


@pytest.mark.parametrize("flag", ["--sensors", "--points", "--rounds"])
def test_machine_speed_refuses_an_empty_workload(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([flag, "0"])
    assert stopped.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
