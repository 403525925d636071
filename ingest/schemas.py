"""Shapes of what arrives: readings from sensors, as JSON on Kafka or over HTTP."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"


class Reading(BaseModel):
    """One measurement. ``area`` may be omitted when the catalog or coordinates give it."""

    # NaN and infinity are never measurements: refuse them at the door.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    sensor_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN)
    kind: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    value: float
    unit: str = Field(default="", max_length=32)
    ts: AwareDatetime
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    area: str | None = Field(default=None, min_length=1, max_length=128, pattern=ID_PATTERN)


class ReadingBatch(BaseModel):
    """The HTTP ingest body: a JSON object with the list, so it can grow fields later."""

    readings: list[Reading] = Field(min_length=1)


class Rejection(BaseModel):
    """Why one message was refused: what the dead-letter record and the 422 carry."""

    field: str
    reason: str
    value: str | None = None


def utc_iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
