"""A dead worker is visible: /readyz names it, and the process exits non-zero instead of serving on.

/readyz also says, per consumer, how many messages wait uncommitted and how
long ago a batch was stored, and whether the broker keeps what it accepted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.main import create_app
from app.services import Services
from bench.isolation import as_json, isolated_settings
from bench.servers import private_influxd
from config.settings import Settings
from ingest.broker import EmbeddedBroker, free_port
from ingest.kafka import ensure_topics
from tests.pipeline_harness import wait_until
from tests.test_consumer_faults import produce, quiet_readings


def _exploding_worker(_svc: Services) -> Any:
    def work(_stop: threading.Event) -> None:
        raise RuntimeError("injected: worker bug")

    return work


def test_readyz_answers_503_naming_a_dead_worker(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    )
    app = create_app(settings, extra_workers={"exploder": _exploding_worker})
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 503, timeout_s=10, what="readyz to say 503")
        body = client.get("/readyz").json()
    assert body["ready"] is False
    assert body["checks"] == {"kafka": True, "store": True, "database": True}
    assert body["workers"]["exploder"] == "dead: RuntimeError: injected: worker bug"


def test_readyz_reports_consumer_lag_last_batch_age_and_durability(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """While the store is down the lag is every produced reading; once it is back, none."""
    with private_influxd(tmp_path / "influxd") as influxd:
        settings = isolated_settings(
            bootstrap=broker.bootstrap,
            store_url=influxd.store_url("lag"),
            database_url=f"sqlite:///{tmp_path}/state.sqlite3",
            checkpoint_interval_s=0.5,
            broker_durable=False,
        )
        ensure_topics(settings)
        readings = quiet_readings(minutes=30, sensors=4, end=_minutes_ago(5))
        produce(settings, settings.topic_readings, as_json(readings))
        influxd.stop()
        with TestClient(create_app(settings, run_ingest=True)) as client:

            def readings_consumer() -> dict[str, Any]:
                return client.get("/readyz").json()["consumers"]["readings"]  # type: ignore[no-any-return]

            wait_until(
                lambda: readings_consumer()["lag"] == len(readings),
                timeout_s=30,
                what="the lag to count every reading while the store is down",
            )
            assert readings_consumer()["last_stored_batch_age_s"] is None
            body = client.get("/readyz").json()
            assert body["durability"]["broker_durable"] is False
            assert body["ready"] is False  # the store is down
            influxd.start()
            wait_until(
                lambda: readings_consumer()["lag"] == 0,
                timeout_s=60,
                what="the lag to drop to zero once the store is back",
            )
            age = readings_consumer()["last_stored_batch_age_s"]
            assert age is not None and 0 <= age < 60
            assert client.get("/readyz").json()["consumers"]["reports"]["lag"] == 0


def _minutes_ago(minutes: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    env |= {f"CITYWARN_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}
    return env


def test_citywarn_run_exits_nonzero_when_its_ingest_worker_dies(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The store is an InfluxDB with authentication on and no database for us: every write
    answers 404. That is not the data's fault and no retry mends it, so the readings worker
    stops, and ``run`` must not go on serving an API whose ingest is dead."""
    with private_influxd(tmp_path / "influxd", auth=True) as influxd:
        settings = isolated_settings(
            bootstrap=broker.bootstrap,
            store_url=influxd.store_url("forbidden"),
            database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        )
        ensure_topics(settings)
        produce(
            settings,
            settings.topic_readings,
            as_json(quiet_readings(minutes=2, sensors=2, end=_minutes_ago(5))),
        )
        log = tmp_path / "run.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "run", "--port", str(free_port())],
                env=_env(settings),
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        text = log.read_text()
        assert code != 0, text[-3000:]
        assert "worker ingest died" in text and "404" in text, text[-3000:]


def test_citywarn_ingest_exits_nonzero_when_its_report_worker_dies(
    broker: EmbeddedBroker, postgres_url: str, tmp_path: Path
) -> None:
    """The reports table is dropped under a running ``citywarn ingest`` (PostgreSQL: undefined
    table, a ProgrammingError that no retry mends): the process stops with a non-zero status."""
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=postgres_url,
    )
    ensure_topics(settings)
    log = tmp_path / "ingest.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ingest"],
            env=_env(settings),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    engine = sa.create_engine(postgres_url)
    try:
        wait_until(lambda: _has_reports_table(engine), timeout_s=30, what="ingest to create its tables")
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE reports"))
        report = {
            "report_id": "r-1",
            "source": "hotline",
            "text": "water over the kerb",
            "ts": _minutes_ago(1).isoformat(),
            "area": "g-riverside-01",
        }
        produce(settings, settings.topic_reports, [(b"r-1", json.dumps(report).encode(), None)])
        code = proc.wait(60)
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert code != 0, text[-3000:]
    assert "worker report-ingest died" in text, text[-3000:]


def _has_reports_table(engine: sa.Engine) -> bool:
    return sa.inspect(engine).has_table("reports")


def test_citywarn_run_on_the_embedded_broker_says_it_is_not_durable(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    env |= {
        "CITYWARN_STORE_URL": f"file://{tmp_path}/store.sqlite3",
        "CITYWARN_DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3",
    }
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _answers(port), timeout_s=40, what=f"citywarn run to answer: {log.read_text()}")
        body = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert body["durability"]["broker_durable"] is False
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, log.read_text()[-3000:]


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code in {200, 503}
    except httpx.HTTPError:
        return False
