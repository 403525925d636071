"""The validator's quick acceptance agrees with its full account of problems, for any reading.

``ReadingValidator.check`` accepts a reading after a few comparisons and names
problems only for the rest; the two must never disagree, or a bad reading would
be stored (or a good one refused) on the quick path alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.areas import load_areas
from config.timeutil import EARLIEST, EPOCH, LATEST, storable, to_ns
from ingest.schemas import Reading, reading_fields
from ingest.validation import ReadingValidator
from store.schemas import Point
from tests.factories import CATALOG, NOW

VALIDATOR = ReadingValidator(CATALOG, areas=load_areas(), max_future_skew_s=300, max_past_age_s=7 * 86400)
SENSORS = CATALOG.sensors[:8]
KINDS = sorted(CATALOG.kinds)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    sensor = draw(st.sampled_from(SENSORS))
    kind = CATALOG.kinds[sensor.kind]
    return Reading(
        sensor_id=draw(st.sampled_from([sensor.id, "not-a-sensor"])),
        kind=draw(st.sampled_from([sensor.kind, *KINDS[:2], "no_such_kind"])),
        value=draw(
            st.one_of(
                st.floats(kind.valid_min, kind.valid_max),
                st.sampled_from([kind.valid_min, kind.valid_max, kind.valid_min - 1, kind.valid_max + 1]),
            )
        ),
        unit=draw(st.sampled_from(["", kind.unit, "furlongs"])),
        ts=NOW
        + timedelta(
            seconds=draw(st.sampled_from([0, -7 * 86400, -7 * 86400 - 1, 300, 301, -3600, 86400 * 30]))
        ),
        area=draw(st.sampled_from([None, sensor.area, "d-riverside", "no-such-area"])),
    )


@settings(max_examples=500, deadline=None)
@given(reading=readings())
def test_quick_acceptance_and_the_full_account_agree(reading: Reading) -> None:
    sensor = next((s for s in CATALOG.sensors if s.id == reading.sensor_id), None)
    fields = reading_fields(reading)
    problems = VALIDATOR._problems(fields, NOW, CATALOG, sensor, to_ns(reading.ts))
    result = VALIDATOR.check(reading, NOW)
    # As the consumer validates a message: a field the message left out is no key at all.
    sent = {key: value for key, value in fields.items() if value not in ("", None)}
    assert VALIDATOR.check_fields(sent, NOW) == result  # type: ignore[arg-type]
    if problems:
        assert result == problems
    else:
        assert isinstance(result, Point)
        assert result == Point(sensor.id, sensor.kind, sensor.area, to_ns(reading.ts), reading.value)  # type: ignore[union-attr]


def test_the_window_follows_now_from_one_batch_to_the_next() -> None:
    ts = NOW + timedelta(seconds=250)
    first = VALIDATOR.check(
        Reading(sensor_id=SENSORS[0].id, kind=SENSORS[0].kind, value=_valid(), ts=ts), NOW
    )
    assert isinstance(first, Point)
    later = NOW - timedelta(seconds=60)  # a new batch's "now": the same reading is now too far ahead
    second = VALIDATOR.check(
        Reading(sensor_id=SENSORS[0].id, kind=SENSORS[0].kind, value=_valid(), ts=ts), later
    )
    assert isinstance(second, list) and [r.field for r in second] == ["ts"]


def _valid() -> float:
    kind = CATALOG.kinds[SENSORS[0].kind]
    return (kind.valid_min + kind.valid_max) / 2


@settings(max_examples=300, deadline=None)
@given(
    ts=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_min=st.integers(-18 * 60 + 1, 18 * 60 - 1),
)
def test_instants_convert_the_same_whatever_their_offset(ts: datetime, offset_min: int) -> None:
    aware = ts.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    try:
        in_utc = aware.astimezone(UTC)
    except OverflowError:
        in_utc = None
    expected = in_utc is not None and EARLIEST <= in_utc <= LATEST
    assert storable(aware) == expected
    if expected:
        assert in_utc is not None
        assert to_ns(aware) == (in_utc - EPOCH) // timedelta(microseconds=1) * 1000
    assert to_ns(ts) == to_ns(ts.replace(tzinfo=UTC))  # naive means UTC


@settings(max_examples=500, deadline=None)
@given(
    ts=st.one_of(
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        # Near the bounds, where an offset decides.
        st.datetimes(min_value=datetime(1677, 9, 20), max_value=datetime(1677, 9, 22)),
        st.datetimes(min_value=datetime(2262, 4, 10), max_value=datetime(2262, 4, 13)),
    ),
    offset_min=st.integers(-18 * 60 + 1, 18 * 60 - 1),
)
def test_a_reading_s_time_is_taken_exactly_when_the_stores_can_hold_it(ts: datetime, offset_min: int) -> None:
    """The bounds pydantic checks on ``Reading.ts`` say what ``storable`` says, whatever the offset."""
    aware = ts.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    body = {"sensor_id": "s-1", "kind": "gas", "value": 1.0, "ts": aware.isoformat()}
    try:
        Reading.model_validate_json(json.dumps(body))
        taken = True
    except ValidationError as exc:
        assert [e["loc"] for e in exc.errors()] == [("ts",)]
        taken = False
    assert taken == storable(aware)
