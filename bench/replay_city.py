"""A city of its own for ``bench.replay``: one sensor per labelled file, each alone in its own area.

The service checks that every sensor's area exists and holds its coordinates,
and fuses signals of one hazard across touching areas. So each file gets a
district of its own, a small square that touches no other: a warning then
belongs to exactly one file, and no file's signal can join another's warning.
Kinds are one per category and unit-free: no warning lines and no minimum
deviation, so what opens a warning is the detector and the decision step at
their defaults, not a line someone drew for these numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.nab_scoring import CorpusFile

# Every kind needs a hazard the city's taxonomy knows and a playbook; which one does not change
# detection (the level rule reads the kind's criticality, left at its default).
HAZARD = "public_health"
_SIDE_DEG = 0.01  # a district's side; squares sit 0.02 degrees apart, so none touch
_PER_ROW = 20
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class ReplayedFile:
    """A labelled file as the service sees it: its sensor, kind and area."""

    corpus: CorpusFile
    sensor_id: str
    kind: str
    area: str
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class CityFiles:
    catalog: Path
    areas: Path


def describe(corpus: Sequence[CorpusFile]) -> list[ReplayedFile]:
    """Sensor, kind and area for each file, in corpus order (ids stay valid for the service's patterns)."""
    out = []
    for n, f in enumerate(corpus):
        category, _, filename = f.name.partition("/")
        stem = _ID_UNSAFE.sub("-", Path(filename).stem)
        lon, lat = _centre(n)
        out.append(
            ReplayedFile(
                corpus=f,
                sensor_id=f"nab{n:03d}-{stem}"[:128],
                kind=f"nab-{_ID_UNSAFE.sub('-', category)}"[:64],
                area=f"nab-{n:03d}",
                lon=lon,
                lat=lat,
            )
        )
    return out


def write_city(files: Sequence[ReplayedFile], root: Path) -> CityFiles:
    """The catalog and areas files for ``files`` in ``root``; returns their paths."""
    root.mkdir(parents=True, exist_ok=True)
    catalog, areas = root / "sensors.yaml", root / "areas.geojson"
    catalog.write_text(yaml.safe_dump(_catalog(files), sort_keys=False), encoding="utf-8")
    areas.write_text(json.dumps(_areas(files)), encoding="utf-8")
    return CityFiles(catalog=catalog, areas=areas)


def _catalog(files: Sequence[ReplayedFile]) -> dict[str, Any]:
    values: dict[str, list[np.ndarray]] = {}
    for f in files:
        values.setdefault(f.kind, []).append(f.corpus.values)
    kinds = {}
    for kind, arrays in values.items():
        lo, hi = float(min(a.min() for a in arrays)), float(max(a.max() for a in arrays))
        # Wide enough that no reading of these files is refused, and valid_min < valid_max
        # even for a flat series.
        pad = max(hi - lo, abs(lo), abs(hi), 1.0)
        kinds[kind] = {
            "unit": "",
            "hazard": HAZARD,
            "valid_min": lo - pad,
            "valid_max": hi + pad,
            "min_deviation": 0.0,
            "description": f"Unit-free series replayed by bench.replay ({kind}).",
        }
    sensors = [
        {"id": f.sensor_id, "kind": f.kind, "area": f.area, "name": f.corpus.name, "lat": f.lat, "lon": f.lon}
        for f in files
    ]
    return {"kinds": kinds, "sensors": sensors}


def _areas(files: Sequence[ReplayedFile]) -> dict[str, Any]:
    features = []
    for f in files:
        h = _SIDE_DEG / 2
        ring = [
            [f.lon - h, f.lat - h],
            [f.lon + h, f.lat - h],
            [f.lon + h, f.lat + h],
            [f.lon - h, f.lat + h],
            [f.lon - h, f.lat - h],
        ]
        features.append(
            {
                "type": "Feature",
                "properties": {"id": f.area, "name": f.corpus.name, "level": "district", "parent": None},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _centre(n: int) -> tuple[float, float]:
    step = 2 * _SIDE_DEG
    return round(10.0 + step * (n % _PER_ROW), 6), round(10.0 + step * (n // _PER_ROW), 6)
