"""CITYWARN_LOG_FORMAT=json: one JSON object a line, with the fields a log shipper indexes."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.json_logs import JsonFormatter, log_handler
from config.settings import Settings
from ingest.broker import EmbeddedBroker, free_port


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("citywarn.test_json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_each_record_is_one_json_line_with_time_level_logger_message_and_extras(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    before = datetime.now(UTC)
    logger.info("stored %d readings\nin one batch", 12, extra={"topic": "citywarn.readings", "partition": 2})
    logger.warning("plain")
    first, second = lines(out)
    assert first["message"] == "stored 12 readings\nin one batch"
    assert first["level"] == "INFO" and second["level"] == "WARNING"
    assert first["logger"] == "citywarn.test_json_logs"
    assert first["topic"] == "citywarn.readings" and first["partition"] == 2
    assert "traceback" not in first and "topic" not in second
    stamp = str(first["time"])
    assert stamp.endswith("Z")  # RFC 3339, UTC
    at = datetime.fromisoformat(stamp)
    assert at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC)


def test_an_exception_travels_as_one_string_field(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = captured
    try:
        {}["missing"]
    except KeyError:
        logger.exception("worker %s died", "ingest")
    [record] = lines(out)
    assert record["message"] == "worker ingest died"
    assert record["level"] == "ERROR"
    trace = record["traceback"]
    assert isinstance(trace, str)
    assert trace.startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in trace and "test_an_exception_travels_as_one_string_field" in trace


def test_values_json_cannot_hold_are_written_as_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = captured
    logger.info("odd extras", extra={"path": Path("/tmp/x"), "at": datetime(2026, 1, 1, tzinfo=UTC)})
    [record] = lines(out)
    assert record["path"] == "/tmp/x" and record["at"] == "2026-01-01 00:00:00+00:00"


def test_text_stays_the_default_format() -> None:
    assert Settings().log_format == "text"
    assert not isinstance(log_handler("text").formatter, JsonFormatter)
    assert isinstance(log_handler("json").formatter, JsonFormatter)


def test_citywarn_serve_writes_only_json_lines(tmp_path: Path, broker: EmbeddedBroker) -> None:
    """The process as operators run it: uvicorn's own lines (start-up, access log) are JSON too."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    env |= {
        "CITYWARN_LOG_FORMAT": "json",
        "CITYWARN_ACCESS_LOG": "true",
        "CITYWARN_DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3",
        "CITYWARN_STORE_URL": f"file://{tmp_path}/store.sqlite3",
        "CITYWARN_KAFKA_BOOTSTRAP": broker.bootstrap,
    }
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "citywarn"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert records, "nothing was logged"
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    loggers = {r["logger"] for r in records}
    assert "uvicorn.error" in loggers and "uvicorn.access" in loggers
