"""InfluxDB line protocol, built with plain string formatting.

Escaping follows the line-protocol reference and influxdb-client's rules:
measurements escape comma and space; tag keys, tag values and field keys also
escape ``=``; control characters become their backslash forms. Backslashes
are left alone: InfluxDB 1.x stores a doubled one literally (measured on
1.6.7), and ingest's identifier pattern admits none. Tag sets are
cached per series because a series' tags never change, which makes building
a line a single f-string (DESIGN measured ~244k points/s this way against
~85k with influxdb-client's ``Point``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from store.schemas import Point

MEASUREMENT = "reading"

_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", **_CONTROL})
_ESCAPE_KEY = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\=", **_CONTROL})


def escape_measurement(name: str) -> str:
    return name.translate(_ESCAPE_MEASUREMENT)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_ESCAPE_KEY)


@lru_cache(maxsize=65_536)
def series_prefix(sensor_id: str, kind: str, area: str) -> str:
    """``reading,area=..,kind=..,sensor_id=..`` with tags in key order, as InfluxDB prefers."""
    return (
        f"{escape_measurement(MEASUREMENT)},area={escape_key(area)},"
        f"kind={escape_key(kind)},sensor_id={escape_key(sensor_id)}"
    )


def to_lines(points: Iterable[Point]) -> str:
    """One line per point; values are always floats so the field type never conflicts."""
    return "\n".join(
        f"{series_prefix(p.sensor_id, p.kind, p.area)} value={float(p.value)!r} {p.ts_ns}" for p in points
    )
