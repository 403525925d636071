"""A 202 is a promise: with a broker that outlives the service, a SIGKILL loses no accepted reading.

The broker is a separate Tansu process owned by the test, handed to ``citywarn
run`` as its configured bootstrap, so killing the service leaves the queued
messages where a restarted consumer finds them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

from demo.city import demo_readings
from ingest.broker import EmbeddedBroker, free_port
from store.factory import open_store
from tests.auth_helpers import bearer, cli_key
from tests.factories import CATALOG
from tests.pipeline_harness import wait_until

BATCH = 500
ACCEPTED_AT_LEAST = 4000


@contextmanager
def citywarn_run(env: dict[str, str], cwd: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``citywarn run`` as a real process on a free port; stopped (if still alive) on exit."""
    port = free_port()
    citywarn = str(Path(sys.executable).parent / "citywarn")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [citywarn, "run", "--port", str(port)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), timeout_s=30, what=f"citywarn run to be ready (log: {log})")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_every_reading_answered_202_survives_a_sigkill_of_the_service(tmp_path: Path) -> None:
    store_url = f"file://{tmp_path}/store.sqlite3"
    readings = demo_readings(end=datetime.now(UTC), step_s=60, catalog=CATALOG)
    with EmbeddedBroker() as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
        env |= {
            "CITYWARN_KAFKA_BOOTSTRAP": broker.bootstrap,
            "CITYWARN_STORE_URL": store_url,
            "CITYWARN_DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3",
            # Tansu finishes a group join sooner with short intervals (see Settings).
            "CITYWARN_KAFKA_MAX_POLL_INTERVAL_MS": "10000",
            "CITYWARN_KAFKA_SESSION_TIMEOUT_MS": "6000",
        }
        log = tmp_path / "run.log"
        answered: Counter[str] = Counter()
        store = open_store(store_url)
        try:
            with (
                citywarn_run(env, tmp_path, log) as (proc, url),
                httpx.Client(
                    base_url=url,
                    timeout=30,
                    headers=bearer(cli_key("ingest", "gateway", cwd=tmp_path, env=env)),
                ) as http,
            ):
                for start in range(0, len(readings), BATCH):
                    batch = readings[start : start + BATCH]
                    resp = http.post("/v1/readings", json={"readings": batch})
                    assert resp.status_code == 202, resp.text
                    body = resp.json()
                    assert (body["accepted"], body["status"], body["durable"]) == (len(batch), "queued", True)
                    answered.update(str(r["sensor_id"]) for r in batch)
                    if start == 0:
                        # Killed mid-stream: some readings stored (their offsets perhaps not yet
                        # committed), the rest only on the broker.
                        wait_until(lambda: store.count() > 0, timeout_s=30, what="the consumer's first batch")
                    if answered.total() >= ACCEPTED_AT_LEAST:
                        break
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)

            with citywarn_run(env, tmp_path, log):
                wait_until(
                    lambda: store.count() >= answered.total(),
                    timeout_s=40,
                    what=f"{answered.total()} readings in the store (service log: {log})",
                )
            # Each one exactly once: the replay after the kill overwrote, it did not duplicate.
            assert {s: store.count(s) for s in answered} == dict(answered)
        finally:
            store.close()
