"""Reading validation: shape first, then meaning, every refusal naming its field."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from config.areas import load_areas
from ingest.validation import Invalid, ReadingValidator
from store.schemas import Point
from tests.factories import CATALOG, NOW, reading

VALIDATOR = ReadingValidator(CATALOG, areas=load_areas(), max_future_skew_s=300, max_past_age_s=7 * 86400)


def fields_of(result: Point | Invalid) -> set[str]:
    assert isinstance(result, Invalid)
    return {r.field for r in result.rejections}


def test_good_reading_becomes_a_point_in_its_catalog_area() -> None:
    p = VALIDATOR.parse(reading("gas-oldtown-01", 1.5, NOW), NOW)
    assert p == Point("gas-oldtown-01", "gas", "g-oldtown-05", int(NOW.timestamp()) * 10**9, 1.5)


def test_timestamp_keeps_nanosecond_precision() -> None:
    ts = NOW + timedelta(microseconds=123_456)
    p = VALIDATOR.parse(reading("gas-oldtown-01", 1.5, ts), NOW + timedelta(seconds=1))
    assert isinstance(p, Point) and p.ts_ns % 10**9 == 123_456_000


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", ""),
        (b'{"sensor_id": "gas-oldtown-01", "kind": "gas", "ts": "2026-11-29T08:00:00Z"}', "value"),
        (
            b'{"sensor_id": "gas-oldtown-01", "kind": "gas", "value": "x", "ts": "2026-11-29T08:00:00Z"}',
            "value",
        ),
        (b'{"sensor_id": "gas-oldtown-01", "kind": "gas", "value": 1, "ts": "2026-11-29T08:00:00"}', "ts"),
        (b'{"sensor_id": "a b", "kind": "gas", "value": 1, "ts": "2026-11-29T08:00:00Z"}', "sensor_id"),
        (b"[1, 2]", ""),
    ],
)
def test_malformed_messages_are_refused_by_shape(raw: bytes, field: str) -> None:
    result = VALIDATOR.parse(raw, NOW)
    assert isinstance(result, Invalid) and result.raw == raw
    assert any(r.field.startswith(field) for r in result.rejections)


def test_nan_and_infinity_are_refused() -> None:
    for token in (b"NaN", b"Infinity"):
        raw = b'{"sensor_id": "gas-oldtown-01", "kind": "gas", "value": %s, "ts": "%s"}' % (
            token,
            NOW.isoformat().encode(),
        )
        assert fields_of(VALIDATOR.parse(raw, NOW)) == {"value"}


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"value": 101.0}, {"value"}),
        ({"value": -0.1}, {"value"}),
        ({"unit": "ppm"}, {"unit"}),
        ({"kind": "water_level", "value": 1.0}, {"kind"}),
        ({"area": "atlantis"}, {"area"}),
    ],
)
def test_meaning_is_checked_against_the_catalog(kwargs: dict[str, object], fields: set[str]) -> None:
    value = kwargs.pop("value", 1.0)
    raw = json.loads(reading("gas-oldtown-01", float(value), NOW))  # type: ignore[arg-type]
    raw.update(kwargs)
    assert fields_of(VALIDATOR.parse(json.dumps(raw).encode(), NOW)) == fields


def test_timestamps_outside_the_window_are_refused_with_the_reason() -> None:
    future = VALIDATOR.parse(reading("gas-oldtown-01", 1.0, NOW + timedelta(minutes=6)), NOW)
    old = VALIDATOR.parse(reading("gas-oldtown-01", 1.0, NOW - timedelta(days=8)), NOW)
    assert isinstance(future, Invalid) and "future" in future.reason
    assert isinstance(old, Invalid) and "older" in old.reason
    assert isinstance(VALIDATOR.parse(reading("gas-oldtown-01", 1.0, NOW + timedelta(minutes=4)), NOW), Point)


def test_a_sensor_missing_from_the_catalog_is_refused_wherever_it_claims_to_be() -> None:
    # Coordinates or an area would once place it; judged by its kind's lines, it could open warnings.
    for extra in ({"lat": 30.5330, "lon": 114.2700}, {"area": "g-riverside-01"}, {}):
        result = VALIDATOR.parse(reading("wl-fake-99", 3.0, NOW, kind="water_level", **extra), NOW)
        assert isinstance(result, Invalid)
        [rejection] = result.rejections
        assert (rejection.field, rejection.value) == ("sensor_id", "wl-fake-99")


def test_a_known_sensor_is_stored_as_catalogued_and_cannot_claim_another_area() -> None:
    moved = VALIDATOR.parse(reading("gas-oldtown-01", 1.0, NOW, area="g-riverside-01"), NOW)
    assert isinstance(moved, Invalid) and "g-oldtown-05" in moved.reason
    [rejection] = moved.rejections
    assert rejection.field == "area"
    # Its own area, stated or not, and any coordinates: the catalog's area is what is stored.
    for extra in ({"area": "g-oldtown-05"}, {"lat": 10.0, "lon": 10.0}):
        point = VALIDATOR.parse(reading("gas-oldtown-01", 1.0, NOW, **extra), NOW)
        assert isinstance(point, Point) and point.area == "g-oldtown-05"


def test_every_problem_is_reported_not_just_the_first() -> None:
    raw = json.loads(reading("gas-oldtown-01", 1.0, NOW + timedelta(days=1)))
    raw.update(value=500.0, unit="ppm")
    assert fields_of(VALIDATOR.parse(json.dumps(raw).encode(), NOW)) == {"value", "unit", "ts"}
