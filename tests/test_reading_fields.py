"""The consumer validates a reading into ``ReadingFields``, the API into ``Reading``: they must agree.

A reading one takes and the other refuses would be stored from Kafka and
refused over HTTP (or the reverse), and an integrator would be told one thing
by the dead-letter topic and another by the API.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from ingest.schemas import Reading, ReadingFields, reading_fields

FIELDS = TypeAdapter(ReadingFields)


def without_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema's fields and what is required of them; a default says only what a missing
    field reads as, which ``ReadingValidator.check_fields`` supplies itself."""
    fields = {
        name: {k: v for k, v in spec.items() if k != "default"} for name, spec in schema["properties"].items()
    }
    return {"properties": fields, "required": schema["required"]}


def test_the_two_forms_have_the_same_fields_and_constraints() -> None:
    assert without_defaults(FIELDS.json_schema()) == without_defaults(Reading.model_json_schema())


TEXT = st.one_of(
    st.sampled_from(["gas-01", "g-oldtown-01", "gas", "", " gas", "-x", "a" * 129, "ppm", "a.b:c_d-e"]),
    st.text(max_size=12),
)
VALUES = st.one_of(
    TEXT,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.none(),
    st.sampled_from(["1.5", "NaN", "Infinity", [], {}]),
)
TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-12-05T03:00:00.123Z",
            "2026-12-05T03:00:00+05:30",
            "2026-12-05T03:00:00",  # no offset
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "yesterday",
            1_790_000_000,
        ]
    ),
    VALUES,
)
IDS = st.sampled_from(["gas-01", "g-oldtown-01", "gas", "a.b:c_d-e", "A9"])
NUMBERS = st.floats(-1e6, 1e6) | st.integers(-1000, 1000)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three draws in four from ``good``, so that whole documents are often taken too."""
    return st.one_of(good, good, good, bad)


FIELD_VALUES = {
    "sensor_id": mostly(IDS, TEXT | VALUES),
    "kind": mostly(IDS, TEXT | VALUES),
    "value": mostly(NUMBERS, VALUES),
    "unit": mostly(st.sampled_from(["", "ppm", "mm/h"]), TEXT | VALUES),
    "ts": mostly(st.sampled_from(["2026-12-05T03:00:00.123Z", "2026-12-05T03:00:00+05:30"]), TIMES),
    "lat": mostly(st.floats(-90, 90) | st.none(), VALUES | st.floats(-100, 100)),
    "lon": mostly(st.floats(-180, 180) | st.none(), VALUES | st.floats(-200, 200)),
    "area": mostly(IDS | st.none(), TEXT | VALUES),
    "extra": VALUES,
}


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    keys = draw(st.sets(st.sampled_from(sorted(FIELD_VALUES)), min_size=3))
    keys |= draw(st.sets(st.sampled_from(["sensor_id", "kind", "value", "ts"])))
    doc = {key: draw(FIELD_VALUES[key]) for key in sorted(keys)}
    return json.dumps(doc, allow_nan=True).encode()


def errors(exc: ValidationError) -> list[tuple[Any, ...]]:
    """What a refusal tells (``ingest.validation.rejections_from``): each field and its message.
    (A document that is no object is a ``model_type`` error for one, ``dict_type`` for the other,
    with the same message.)"""
    return [(e["loc"], e["msg"], repr(e.get("input"))) for e in exc.errors(include_url=False)]


@settings(max_examples=400, deadline=None)
@given(documents())
@example(b'{"sensor_id": "gas-01", "kind": "gas", "value": 1.5, "ts": "2026-12-05T03:00:00Z", "x": 1}')
@example(b'{"sensor_id": "gas-01", "kind": "gas", "value": NaN, "ts": "2026-12-05T03:00:00Z"}')
@example(b'[{"sensor_id": "gas-01"}]')
def test_every_document_is_taken_or_refused_alike_with_the_same_errors(raw: bytes) -> None:
    refused_by_model: list[tuple[Any, ...]] | None = None
    try:
        model = Reading.model_validate_json(raw)
    except ValidationError as exc:
        refused_by_model = errors(exc)
    try:
        fields = FIELDS.validate_json(raw)
    except ValidationError as exc:
        assert refused_by_model == errors(exc)
        return
    assert refused_by_model is None
    assert reading_fields(model) == {"unit": "", "lat": None, "lon": None, "area": None, **fields}
