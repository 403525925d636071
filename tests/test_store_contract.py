"""One contract for every time-series store adapter: InfluxDB (real influxd) and embedded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.servers import private_influxd
from store.factory import open_store
from store.port import StoreError, TimeSeriesStore
from store.schemas import Point

T0 = 1_790_000_000_000_000_000  # 2026-09-21, nanoseconds
MINUTE = 60_000_000_000


@pytest.fixture(params=["influxdb", "embedded"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    if request.param == "influxdb":
        base = request.getfixturevalue("influx_url").removeprefix("http://")
        url = f"influxdb://{base}/t{uuid.uuid4().hex[:10]}"
    else:
        url = f"file://{tmp_path}/store.sqlite3"
    s = open_store(url)
    yield s
    s.close()


def series(sensor_id: str, n: int, *, start: int = T0, value0: float = 1.0) -> list[Point]:
    return [
        Point(
            sensor_id=sensor_id,
            kind="water_level",
            area="g-1",
            ts_ns=start + i * MINUTE,
            value=value0 + i / 8,
        )
        for i in range(n)
    ]


def test_write_then_read_returns_points_in_time_order(store: TimeSeriesStore) -> None:
    points = series("wl-1", 5)
    store.write(list(reversed(points)))
    assert store.read("wl-1", T0, T0 + 10 * MINUTE) == points


def test_writing_the_same_batch_twice_keeps_one_copy(store: TimeSeriesStore) -> None:
    points = series("wl-1", 50)
    store.write(points)
    store.write(points)
    assert store.count("wl-1") == 50
    assert store.count() == 50


def test_count_since_takes_points_at_or_after_that_instant(store: TimeSeriesStore) -> None:
    store.write(series("wl-1", 10) + series("wl-2", 10))
    assert store.count(since_ns=T0 + 7 * MINUTE) == 6
    assert store.count("wl-2", since_ns=T0 + 7 * MINUTE) == 3
    assert store.count("wl-2", since_ns=T0 + 10 * MINUTE) == 0
    assert store.count(since_ns=T0) == store.count() == 20


def test_count_of_an_id_no_sensor_has_is_zero_even_when_empty(store: TimeSeriesStore) -> None:
    store.write(series("wl-1", 4))
    assert store.count("") == store.count("wl-9") == 0  # an empty id is an id, not "every sensor"


def test_same_series_and_time_overwrites_the_value(store: TimeSeriesStore) -> None:
    store.write(series("wl-1", 3))
    store.write([Point("wl-1", "water_level", "g-1", T0 + MINUTE, 9.5)])
    values = [p.value for p in store.read("wl-1", T0, T0 + 3 * MINUTE)]
    assert values == [1.0, 9.5, 1.25]


def test_read_range_is_half_open_and_per_series(store: TimeSeriesStore) -> None:
    store.write(series("wl-1", 10) + series("wl-2", 10, value0=100.0))
    got = store.read("wl-1", T0 + 2 * MINUTE, T0 + 5 * MINUTE)
    assert [p.ts_ns for p in got] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert {p.sensor_id for p in got} == {"wl-1"}
    assert store.read("nope", T0, T0 + 10 * MINUTE) == []


def test_read_respects_limit(store: TimeSeriesStore) -> None:
    store.write(series("wl-1", 20))
    assert len(store.read("wl-1", T0, T0 + 100 * MINUTE, limit=7)) == 7


def test_read_kind_returns_every_series_of_that_kind(store: TimeSeriesStore) -> None:
    gas = [Point("gas-1", "gas", "g-2", T0, 0.5)]
    store.write(series("wl-1", 3) + series("wl-2", 3) + gas)
    got = store.read_kind("water_level", T0, T0 + 10 * MINUTE)
    assert len(got) == 6
    assert {p.sensor_id for p in got} == {"wl-1", "wl-2"}
    assert store.read_kind("gas", T0, T0 + MINUTE) == gas


def test_identifiers_with_special_characters_round_trip(store: TimeSeriesStore) -> None:
    odd = "wl 1,area=x'q\""
    point = Point(odd, "water level", "grid, north=1", T0, -2.5)
    store.write([point])
    assert store.read(odd, T0, T0 + 1) == [point]


def test_large_batch_is_stored_whole(store: TimeSeriesStore) -> None:
    points = [p for s in range(30) for p in series(f"s-{s}", 1000)]
    store.write(points)
    assert store.count() == 30_000


def test_ping_answers(store: TimeSeriesStore) -> None:
    assert store.ping() is True


def test_unreachable_influx_raises_store_error() -> None:
    s = open_store("influxdb://127.0.0.1:9/none")
    with pytest.raises(StoreError, match='InfluxDB creating database "none" failed'):
        s.write(series("wl-1", 1))  # a write's first call, named as such, not as a query
    assert s.ping() is False


def test_influx_credentials_in_the_url_are_sent_and_wrong_ones_refused(tmp_path: Path) -> None:
    """An influxd with authentication on: the URL's user and password reach it on writes and reads."""
    with private_influxd(tmp_path / "influxd", auth=True) as influxd:
        # influxd lets the first user be made without credentials, and only that.
        made = httpx.post(
            f"{influxd.url}/query", data={"q": "CREATE USER eoc WITH PASSWORD 's3cret' WITH ALL PRIVILEGES"}
        )
        assert made.status_code == 200, made.text
        good = open_store(influxd.store_url("citywarn") + "?user=eoc&password=s3cret")
        bad = open_store(influxd.store_url("citywarn") + "?user=eoc&password=wrong")
        try:
            points = series("wl-1", 3)
            good.write(points)
            assert good.read("wl-1", T0, T0 + 10 * MINUTE) == points
            with pytest.raises(StoreError, match="401"):
                bad.write(points)
            with pytest.raises(StoreError, match="401"):
                bad.read("wl-1", T0, T0 + 10 * MINUTE)
        finally:
            good.close()
            bad.close()
