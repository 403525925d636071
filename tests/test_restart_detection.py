"""`citywarn run` restarted in the same directory keeps scoring: a new broker log is not a replay.

The embedded Tansu broker keeps its log in memory, so every start begins each
partition again at offset 0. Detector checkpoints saved against the old log
must not make the new readings look already learned.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from ingest.broker import free_port
from tests.auth_helpers import bearer, cli_key

GAS_SENSOR, GAS_AREA = "gas-oldtown-01", "g-oldtown-05"
DAY_SENSOR = "wl-riverside-01"  # a demo gauge reporting every 5 minutes all day
KEYS: dict[str, dict[str, str]] = {}  # base URL -> the headers of an admin key made for that run


@contextmanager
def citywarn_run(workdir: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`citywarn run` with the embedded broker in ``workdir``, on a free port; killed if still running."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    citywarn = str(Path(sys.executable).parent / "citywarn")
    base = f"http://127.0.0.1:{port}"
    KEYS[base] = bearer(cli_key("admin", "restart test", cwd=workdir, env=env))
    log = (workdir / "run.log").open("ab")
    proc = subprocess.Popen(
        [citywarn, "run", "--port", str(port), *args],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        log.close()


def eventually(probe: Callable[[], Any], *, timeout_s: float, what: str, workdir: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = probe()
        except (httpx.HTTPError, sqlite3.Error):
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(
        f"no {what} within {timeout_s}s; log tail:\n{(workdir / 'run.log').read_text()[-3000:]}"
    )


def warnings_of(base: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/v1/warnings", params={"limit": 500}, headers=KEYS[base], timeout=5)
    response.raise_for_status()
    return list(response.json()["items"])


def post_gas(base: str, values: list[float], end: datetime) -> None:
    readings = [
        {
            "sensor_id": GAS_SENSOR,
            "kind": "gas",
            "value": v,
            "unit": "%LEL",
            "ts": (end - timedelta(seconds=30 * (len(values) - 1 - i))).isoformat(),
        }
        for i, v in enumerate(values)
    ]
    response = httpx.post(f"{base}/v1/readings", json={"readings": readings}, headers=KEYS[base], timeout=10)
    assert response.status_code == 202, response.text


def checkpointed_offset(workdir: Path) -> int | None:
    with sqlite3.connect(workdir / "var" / "state.sqlite3") as conn:
        row = conn.execute(
            'SELECT "offset" FROM detector_checkpoints WHERE sensor_id = ?', (GAS_SENSOR,)
        ).fetchone()
    return None if row is None else row[0]


def test_a_red_line_reading_after_a_kill_and_restart_raises_a_warning(tmp_path: Path) -> None:
    with citywarn_run(tmp_path) as (proc, base):
        eventually(
            lambda: httpx.get(f"{base}/healthz", timeout=2).is_success,
            timeout_s=60,
            what="API",
            workdir=tmp_path,
        )
        quiet = [1.5 + 0.1 * (i % 3) for i in range(150)]
        post_gas(base, quiet, datetime.now(UTC) - timedelta(minutes=5))
        eventually(
            lambda: (checkpointed_offset(tmp_path) or 0) >= 100,
            timeout_s=60,
            what="checkpoint",
            workdir=tmp_path,
        )
        assert warnings_of(base) == []
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    with citywarn_run(tmp_path) as (_proc, base):
        eventually(
            lambda: httpx.get(f"{base}/healthz", timeout=2).is_success,
            timeout_s=60,
            what="API",
            workdir=tmp_path,
        )
        posted = time.monotonic()
        post_gas(base, [60.0], datetime.now(UTC))
        [warning] = eventually(
            lambda: [w for w in warnings_of(base) if w["hazard"] == "gas_leak" and w["area"] == GAS_AREA],
            timeout_s=30,
            what="gas warning after the restart",
            workdir=tmp_path,
        )
        assert warning["level"] == "red"
        assert time.monotonic() - posted < 30


def latest_sensor_evidence(base: str) -> str:
    """The newest reading any warning quotes as evidence ('' when none): what the detectors last flagged."""
    observed = [""]
    for w in warnings_of(base):
        detail = httpx.get(f"{base}/v1/warnings/{w['id']}", headers=KEYS[base], timeout=5).json()
        observed += [e["observed_at"] for e in detail["evidence"] if e["source"] == "sensor"]
    return max(observed)


def day_committed(base: str, workdir: Path, run: int) -> bool:
    """Demo day ``run`` is sent and every consumer has checkpointed and committed all of it (lag 0)."""
    if (workdir / "run.log").read_text().count("replayed") < run:
        return False
    consumers = httpx.get(f"{base}/readyz", timeout=5).json()["consumers"].values()
    return bool(consumers) and all(c["lag"] == 0 for c in consumers)


def points_scored(workdir: Path, sensor_id: str) -> int:
    """How many points the sensor's series has learned, as its checkpoint says (``models.engine``)."""
    with sqlite3.connect(workdir / "var" / "state.sqlite3") as conn:
        row = conn.execute(
            "SELECT state FROM detector_checkpoints WHERE sensor_id = ?", (sensor_id,)
        ).fetchone()
    return int(json.loads(row[0])["state"]["learned"]) if row else 0


def test_a_second_demo_run_in_the_same_directory_scores_its_day(tmp_path: Path) -> None:
    """The second day's readings are scored, though its broker log starts again at offset 0.

    Its sensor evidence is not the measure: the second day repeats the first a few seconds
    later, and the decision step, restored from the checkpoint, rightly holds the levels it
    flagged then rather than flag the same rise again.
    """
    scored_by_first_run = 0
    for run in (1, 2):
        with citywarn_run(tmp_path, "--demo", "--demo-speed", "20000") as (proc, base):
            eventually(
                lambda: httpx.get(f"{base}/healthz", timeout=2).is_success,
                timeout_s=60,
                what="API",
                workdir=tmp_path,
            )
            if run == 1:
                eventually(
                    partial(latest_sensor_evidence, base),
                    timeout_s=90,
                    what="sensor evidence",
                    workdir=tmp_path,
                )
            eventually(
                partial(day_committed, base, tmp_path, run),
                timeout_s=90,
                what=f"demo day {run} consumed and committed",
                workdir=tmp_path,
            )
            # A day of 5-minute readings is 288 points: none of the second day's may be skipped.
            # (The checkpoint that counts them is written on its own interval, so wait for it.)
            floor = scored_by_first_run + 288
            eventually(
                lambda floor=floor: points_scored(tmp_path, DAY_SENSOR) >= floor,
                timeout_s=60,
                what=f"day {run}'s points of {DAY_SENSOR} scored",
                workdir=tmp_path,
            )
            scored_by_first_run = points_scored(tmp_path, DAY_SENSOR)
            assert warnings_of(base)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
