"""``bench.incident`` runs on the real PostgreSQL and counts the rows the warning holds as it grows."""

from __future__ import annotations

import re

import pytest

from bench import incident


def test_each_batch_adds_its_signals_to_one_warning(capsys: pytest.CaptureFixture[str]) -> None:
    incident.main(["--batches", "3", "--gauges", "2", "--instants", "2"])
    lines = capsys.readouterr().out.splitlines()
    held = [int(m.group(1)) for line in lines if (m := re.search(r"holds +([\d,]+) rows", line))]
    assert held == [4, 8, 12]
    assert all(float(re.findall(r"([\d.]+) ms", line)[0]) > 0 for line in lines)
