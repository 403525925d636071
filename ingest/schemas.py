"""Shapes of what arrives, as JSON on Kafka or over HTTP: sensor readings and human reports."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, with_config
from typing_extensions import TypedDict

from config.timeutil import EARLIEST, LATEST

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"
# With an offset, and inside what the stores hold (years such as 1 or 9999 are refused by field).
# Bounds pydantic checks itself, not ``config.timeutil.check_storable``: a Python validator was a
# third of a reading's validation (0.9 of 2.7 µs), and pydantic compares aware instants by instant
# whatever their offsets, as ``storable`` does (tests/test_validation_fast_path.py holds them equal).
Timestamp = Annotated[AwareDatetime, Field(ge=EARLIEST, le=LATEST)]


class Reading(BaseModel):
    """One measurement. ``area`` may be omitted when the catalog or coordinates give it."""

    # NaN and infinity are never measurements: refuse them at the door.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    sensor_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN)
    kind: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    value: float
    unit: str = Field(default="", max_length=32)
    ts: Timestamp
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    area: str | None = Field(default=None, min_length=1, max_length=128, pattern=ID_PATTERN)


@with_config(ConfigDict(extra="ignore", allow_inf_nan=False))
class ReadingFields(TypedDict):
    """``Reading``'s fields and checks, validated into a dict: what ingest validates each message as.

    Building the model instance was half of validating a reading from JSON (0.93 of 1.86 µs,
    ``timeit`` on 50,000 bench readings); a dict is all the consumer reads it into. The two
    must take and refuse the same readings with the same errors: their JSON schemas are held
    equal (``tests/test_reading_fields.py``).
    """

    sensor_id: Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
    kind: Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
    value: float
    unit: NotRequired[Annotated[str, Field(max_length=32)]]
    ts: Timestamp
    lat: NotRequired[Annotated[float | None, Field(ge=-90, le=90)]]
    lon: NotRequired[Annotated[float | None, Field(ge=-180, le=180)]]
    area: NotRequired[Annotated[str | None, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]]


def reading_fields(r: Reading) -> ReadingFields:
    """A validated ``Reading`` as the fields the consumer validates into."""
    return ReadingFields(
        sensor_id=r.sensor_id,
        kind=r.kind,
        value=r.value,
        unit=r.unit,
        ts=r.ts,
        lat=r.lat,
        lon=r.lon,
        area=r.area,
    )


class Rejection(BaseModel):
    """Why one message was refused: what the dead-letter record and the 422 carry."""

    field: str
    reason: str
    value: str | None = None


ReportSource = Literal["hotline", "app", "grid_worker", "volunteer", "media", "social"]


class Report(BaseModel):
    """One human report. A category may be omitted: keyword rules then infer one."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    report_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN)
    source: ReportSource
    category: str | None = Field(default=None, min_length=1, max_length=64)
    # The configured limit (Settings.max_report_text_chars) is checked after parsing;
    # this bound only stops absurd payloads early.
    text: str = Field(min_length=1, max_length=100_000)
    ts: Timestamp
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    area: str | None = Field(default=None, min_length=1, max_length=128, pattern=ID_PATTERN)
    media: list[HttpUrl] = Field(default_factory=list, max_length=10)


class ItemRefused(BaseModel):
    """One refused item of a batch, by its index, with every problem found in it."""

    index: int
    errors: list[Rejection]


class BatchAnswer(BaseModel):
    """What became of a batch: how many items were taken, why the others were not, how safe they are.

    Accepted items are queued on the broker, not yet stored: ``durable`` says
    whether the broker keeps them through a crash, ``detail`` says it in words.
    """

    accepted: int
    rejected: list[ItemRefused]
    status: Literal["queued", "refused"]
    durable: bool
    detail: str


class BatchRefusal(BaseModel):
    """The members a 422 problem document adds when items of a batch were refused.

    The items not named in ``rejected`` were accepted and queued all the same;
    ``durable`` says whether the broker keeps them through a crash.
    """

    accepted: int = Field(default=0, description="Items accepted and queued")
    rejected: list[ItemRefused] = Field(default_factory=list, description="Each refused item, by index")
    durable: bool | None = Field(default=None, description="Whether the broker keeps accepted items")
