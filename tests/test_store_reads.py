"""Series reads run a bounded number at once per API process (app.store_reads), and all are answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from bench.isolation import isolated_settings
from config.timeutil import to_ns
from ingest.broker import EmbeddedBroker
from store.schemas import Point
from tests.auth_helpers import admin_client

NOW = datetime.now(UTC).replace(microsecond=0)
SENSOR = "gas-oldtown-01"


class CountingReads:
    """The real store's ``read``, counting how many run at once; each is held a moment so they overlap."""

    def __init__(self, read: Any) -> None:
        self.read, self.running, self.most = read, 0, 0
        self.lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            return self.read(*args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture(params=[1, 3])
def client(request: pytest.FixtureRequest, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    ).model_copy(update={"store_reads_in_flight": request.param})
    with admin_client(create_app(settings)) as c:
        yield c


def test_no_more_series_reads_than_the_setting_run_at_once_and_every_request_is_answered(
    client: TestClient,
) -> None:
    svc = client.app.state.services  # type: ignore[attr-defined]
    svc.store.write(
        [Point(SENSOR, "gas", "g-oldtown-05", to_ns(NOW - timedelta(minutes=m)), m) for m in range(5)]
    )
    counted = svc.store.read = CountingReads(svc.store.read)
    window = {
        "start": (NOW - timedelta(hours=1)).isoformat(),
        "end": (NOW + timedelta(minutes=1)).isoformat(),
    }

    def get(_: int) -> tuple[int, int]:
        resp = client.get(f"/v1/sensors/{SENSOR}/series", params=window)
        return resp.status_code, len(resp.json().get("points", []))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(get, range(12)))
    assert answers == [(200, 5)] * 12
    assert counted.most == svc.settings.store_reads_in_flight
