"""The Kafka key of readings and reports: the area, so an area's state stays on one worker.

The key picks the partition and the partition picks the worker of a consumer
group, so keying by area puts every series of an area, and the area's
reports, on one worker. Warnings are per hazard and area, so one worker
then holds all the evidence for an area's warnings. A sensor belongs to one
area, so its readings still share a partition and keep their order.

Every producer of readings (HTTP ingest, the demo and its live stream,
the benches, the tests) goes through ``area_key`` and ``reading_area``, so
the rule cannot drift between them.

Which partition an area goes to is not left to the client's key hash: a city
has a few dozen areas, and 27 demo grids hashed onto 6 partitions gave
9/5/4/4/4/1 areas, so one of two workers carried two thirds of the city.
``AreaPartitioner`` deals the areas out in turn instead (the i-th area id in
sorted order goes to partition i mod n), which any client in any language
can repeat, unlike librdkafka's and Java's different default hashes.
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


class AreaPartitioner:
    """The partition of a message keyed by an area: areas in id order, dealt out one per partition in turn.

    A key that is no known area gets ``None``: the client's own partitioner places it.
    """

    def __init__(self, area_ids: Iterable[str]) -> None:
        self._rank = {area_key(a): i for i, a in enumerate(sorted(set(area_ids)))}

    def __call__(self, key: bytes | None, partitions: int) -> int | None:
        rank = self._rank.get(key) if key is not None else None
        return None if rank is None else rank % partitions
