"""``python -m bench.api`` as the maintainers run it, for a few seconds: every figure is there and sane."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIGURES = {"warnings_rps", "warnings_p99_ms", "series_rps", "series_p99_ms", "ingest_rate"}


def test_a_short_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    command = [
        "-m",
        "bench.api",
        "--duration",
        "3",
        "--concurrency",
        "2",
        "--rate",
        "1000",
        "--json",
        str(out),
    ]
    done = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures.keys() >= FIGURES
    assert figures["warnings_rps"] > 0 and figures["series_rps"] > 0
    assert 0 < figures["warnings_p99_ms"] < 10_000 and 0 < figures["series_p99_ms"] < 10_000
    assert figures["warnings_errors"] == 0 and figures["series_errors"] == 0
    # The pacing holds the asked rate: neither far short of it nor a burst past it.
    assert 800 <= figures["ingest_rate"] <= 1100
    # The service's own count moved while the readings flowed.
    assert figures["stored_rate"] > 0
    # The demo day opened warnings and stored the hour the series requests read.
    assert figures["warnings_page_items"] > 0 and figures["series_points"] > 0
    assert "warnings" in done.stdout and "series" in done.stdout and "cores shared" in done.stdout
