"""``python -m bench.pipeline`` runs every part end to end on tiny sizes and writes sensible figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from bench.collapsed_stacks import read_collapsed, summary
from bench.pipeline import Latency

KEYS = (
    "readings_per_s",
    "readings_per_s_2_workers",
    "ratio_to_limit",
    "latency_p99_ms",
    "peak_rss_mib_100k_series",
    "broker_consume_decode_per_s",
    "store_write_line_protocol_per_s",
    "latency_samples",
)


def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    tiny = [
        "--sensors",
        "120",
        "--kinds",
        "water_level,gas",
        "--phase-steps",
        "10",
        "--batch-max-messages",
        "200",
    ]
    tiny += ["--checkpoint-interval", "1", "--rate", "300", "--latency-s", "3", "--latency-samples", "6"]
    tiny += ["--rss-series", "300"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", "--quick", *tiny, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(KEYS) <= figures.keys()
    assert figures["sensors"] == 120
    assert figures["models_trained"] == ["gas", "water_level"]
    assert figures["readings_per_s"] > 0 and figures["readings_per_s_2_workers"] > 0
    # The workers' own CPU over the timed span: counted in 10 ms ticks, at most both cores' worth of it.
    for workers, suffix in ((1, "1_worker"), (2, "2_workers")):
        cpu_s = figures[f"worker_cpu_us_per_reading{'' if workers == 1 else '_2_workers'}"]
        cpu_s *= figures[f"readings_timed_{suffix}"] / 1e6
        assert 0 <= cpu_s <= 2 * figures[f"seconds_{suffix}"] + 0.02 * workers
        system = figures[f"worker_system_us_per_reading{'' if workers == 1 else '_2_workers'}"]
        assert 0 <= system <= figures[f"worker_cpu_us_per_reading{'' if workers == 1 else '_2_workers'}"]
        # Where the machine's CPU went over the same span: the workers' share is that same CPU.
        cores = figures[f"cores_{suffix}"]
        assert set(cores) == {"workers", "influxd", "broker", "postgresql", "bench", "other", "idle", "cores"}
        assert all(value >= 0 for value in cores.values())
        parts = sum(value for name, value in cores.items() if name != "cores")
        assert abs(parts - cores["cores"]) <= 0.05
        ticks = 0.02 * workers / figures[f"seconds_{suffix}"]  # each read is to a 10 ms tick
        assert abs(cores["workers"] - cpu_s / figures[f"seconds_{suffix}"]) <= 0.05 + ticks
        # Every sensor learned in the history, so the phase's workers restored each from its checkpoint
        # (a batch voided by a rebalance may restore some again); within the span, a share of their CPU.
        assert figures[f"series_restored_{suffix}"] >= 120
        assert figures[f"restore_s_{suffix}"] >= 0
        assert 0 <= figures[f"restore_share_of_cpu_{suffix}"] <= 1.05
    assert figures["broker_consume_decode_per_s"] > 0 and figures["store_write_line_protocol_per_s"] > 0
    assert 0 < figures["ratio_to_limit"] <= 1.5
    # The machine's speed, before the history and between the two timed phases; each phase's CPU over it.
    reference = figures["machine_reference_us_per_reading"]
    assert len(reference) == 2 and all(r > 0 for r in reference)
    for suffix in ("", "_2_workers"):
        expected = figures[f"worker_cpu_us_per_reading{suffix}"] / (sum(reference) / 2)
        over = figures[f"worker_cpu_per_reading_over_reference{suffix}"]
        assert abs(over - expected) <= 0.01 * expected + 0.002  # both rounded, to 0.1 µs and 0.001
    # Every reading produced, the latency phase's included, was stored once.
    assert figures["readings_stored"] == figures["readings_produced"]
    assert figures["latency_injected"] == 6
    # The timeline lists every anomaly in production order, each seen one with its latency.
    timeline = figures["latency_timeline"]
    assert len(timeline) == 6 and [t for t, _ in timeline] == sorted(t for t, _ in timeline)
    assert sum(ms is not None for _, ms in timeline) == figures["latency_samples"]
    assert figures["latency_samples"] > 0 and figures["latency_samples"] + figures["latency_unseen"] == 6
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p99_ms"] < 60_000
    assert figures["rss_series_held"] == 300 and not figures["rss_stopped_at_cap"]
    assert math.isfinite(figures["peak_rss_mib_100k_series"])
    # The peak is the process's high-water mark (VmHWM): it never falls, and 300 series may not lift it
    # past what loading the models reached before the first one.
    assert figures["peak_rss_mib_100k_series"] >= figures["rss_before_series_mib"] > 0
    assert figures["resident_100k_series_mib"] > 0 and figures["resident_before_series_mib"] > 0
    assert figures["rss_day_series_held"] == 500 and figures["rss_day_points_per_series"] == 50
    # 500 small series may fit in memory the start-up freed but kept resident, so growth can round to 0
    # (a fresh-clone CI saw 0.0); the full bench's 10,000 series of 288 readings are what it measures.
    assert figures["rss_mib_per_1000_series_day"] >= 0


def test_collapsed_stacks_count_self_and_cumulative_time_per_function(tmp_path: Path) -> None:
    raw = tmp_path / "stacks.txt"
    raw.write_text(
        'process 1:"python -m app.cli ingest";run (ingest/consumer.py:200);write (store/influx.py:70) 30\n'
        'process 1:"python -m app.cli ingest";run (ingest/consumer.py:201);score (models/engine.py:180) 60\n'
        "run (ingest/consumer.py:205);score (models/engine.py:181);score (models/engine.py:190) 10\n"
    )
    profile = read_collapsed(raw)
    assert profile.samples == 100
    # Line numbers are dropped, labels are not frames, and recursion counts once per stack.
    assert profile.cumulative["run (ingest/consumer.py)"] == 100
    assert profile.cumulative["score (models/engine.py)"] == 70
    assert profile.self_samples == {"write (store/influx.py)": 30, "score (models/engine.py)": 70}
    assert "top 2 by self time:\n   70.0%       70  score (models/engine.py)" in summary(profile, 2)


def test_latency_quantiles_count_unseen_anomalies_as_lower_bounds() -> None:
    latency = Latency(
        injected=4, samples_ms=[10.0, 20.0, 63.0], unseen_ms=[60.0], produced=4, achieved_rate=1.0
    )
    # Below every unseen anomaly's wait the quantile is exact; at or above it, only a lower bound.
    assert latency.quantile(0.50) == (20.0, False)
    assert latency.quantile(0.75) == (60.0, True)
    assert latency.quantile(0.99) == (63.0, True)
