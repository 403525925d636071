"""The Kafka key of readings and reports: the area, so an area's state stays on one worker.

The key picks the partition and the partition picks the worker of a consumer
group, so keying by area puts every series of an area, and the area's
reports, on one worker. Warnings are per hazard and area, so one worker
then holds all the evidence for an area's warnings. A sensor belongs to one
area, so its readings still share a partition and keep their order.

Every producer of readings (HTTP ingest, the demo and its live stream,
the benches, the tests) goes through ``area_key`` and ``reading_area``, so
the rule cannot drift between them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from config.catalog import Catalog


def area_key(area: str) -> bytes:
    """The Kafka key of a message about ``area``: a reading of a sensor there, or a report."""
    return area.encode()


def sensor_areas(catalog: Catalog) -> dict[str, str]:
    """Each catalogued sensor's area, by sensor id."""
    return {s.id: s.area for s in catalog.sensors}


def reading_area(message: Mapping[str, Any], areas: Mapping[str, str]) -> str:
    """The area a raw reading is keyed by: its sensor's catalogued area.

    The catalog decides, as validation does (a reading may leave ``area`` out).
    A sensor the catalog does not know is dead-lettered by the consumer
    anyway; it falls back to the area it claims, else its own id, so such
    readings at least keep their order.
    """
    sensor_id = str(message["sensor_id"])
    return areas.get(sensor_id) or str(message.get("area") or sensor_id)


def keyed_readings(
    messages: Iterable[Mapping[str, Any]], areas: Mapping[str, str]
) -> Iterator[tuple[bytes, bytes, None]]:
    """Raw readings as (key, JSON value, no headers), ready for ``ConfirmedProducer.send_all``."""
    for m in messages:
        yield area_key(reading_area(m, areas)), json.dumps(m).encode(), None
