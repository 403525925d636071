"""The city's areas (districts and community grids) and point-to-area assignment.

Warnings are issued per area, so every reading and report has to land in the
right one, at ingest speed (batches of tens of thousands of points). The
areas live in ``config/city/areas.geojson`` (RFC 7946, lon/lat order) and are
validated on load: a grid outside its district or two overlapping grids would
send a warning to the wrong community, so that fails at start-up.

Assignment rules (deterministic, so a replay assigns exactly as before):

- A point belongs to every area whose polygon *covers* it (interior or
  boundary). Of those, the smallest by polygon area wins, ties broken by id
  in lexicographic order. So a grid always beats its district, a point on
  the border shared by two grids goes to the smaller grid, and a point on
  the city's outer edge still belongs to the edge grid.
- A hole is not part of its polygon: a point inside a grid's hole belongs to
  whatever fills the hole (an enclave grid), or to the district, or to
  nothing.
- A point covered by no area (or with a non-finite coordinate) gets None.
  Callers keep and flag such points; they never drop them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, model_validator
from shapely.geometry import MultiPolygon, Polygon, shape

AREAS_PATH = Path(__file__).parent / "city" / "areas.geojson"

AreaLevel = Literal["district", "grid"]

# Overlap between two areas of one level larger than this (square degrees,
# about 10 m² here) is a data error, not floating-point noise.
_OVERLAP_TOLERANCE = 1e-9
# Slack when checking that a grid lies inside its district (degrees, ~1 cm).
_CONTAINMENT_SLACK = 1e-7


class Area(BaseModel):
    """One district or community grid: its properties and its polygon."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1)
    name_zh: str | None = None
    level: AreaLevel
    parent: str | None = None
    population: int | None = Field(default=None, ge=0)
    geometry: Polygon | MultiPolygon

    @model_validator(mode="after")
    def _consistent(self) -> Area:
        if self.level == "district" and self.parent is not None:
            raise ValueError(f"district {self.id!r} must have parent null")
        if self.level == "grid" and not self.parent:
            raise ValueError(f"grid {self.id!r} needs its district as parent")
        if self.geometry.is_empty or not self.geometry.is_valid:
            reason = shapely.is_valid_reason(self.geometry)
            raise ValueError(f"area {self.id!r} has an invalid polygon: {reason}")
        return self


class AreaIndex:
    """Spatial index over all areas: point assignment, neighbours, hierarchy."""

    def __init__(self, areas: Iterable[Area]) -> None:
        # Rank = position in (polygon area, id) order; the tree is built in
        # rank order, so the lowest covering tree index is the winner.
        ranked = sorted(areas, key=lambda a: (a.geometry.area, a.id))
        self._areas: tuple[Area, ...] = tuple(ranked)
        self._by_id: dict[str, Area] = {}
        for a in ranked:
            if a.id in self._by_id:
                raise ValueError(f"area id {a.id!r} appears twice")
            self._by_id[a.id] = a
        self._ids = np.array([a.id for a in ranked], dtype=object)
        self._geoms = np.array([a.geometry for a in ranked], dtype=object)
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms)
        self._check_hierarchy()
        self._neighbours = self._touching_pairs()

    # --- look-ups -------------------------------------------------------

    def __len__(self) -> int:
        return len(self._areas)

    def __contains__(self, area_id: object) -> bool:
        return area_id in self._by_id

    def area(self, area_id: str) -> Area | None:
        """The area with this id, or None if the city has no such area."""
        return self._by_id.get(area_id)

    def districts(self) -> list[Area]:
        """All districts, by id."""
        return sorted((a for a in self._areas if a.level == "district"), key=lambda a: a.id)

    def grids(self, district_id: str | None = None) -> list[Area]:
        """All grids by id, or only those of one district."""
        return sorted(
            (
                a
                for a in self._areas
                if a.level == "grid" and (district_id is None or a.parent == district_id)
            ),
            key=lambda a: a.id,
        )

    def parent_of(self, area_id: str) -> str | None:
        """The district id of a grid; None for a district. KeyError if unknown."""
        return self._require(area_id).parent

    def neighbours(self, area_id: str) -> tuple[str, ...]:
        """Ids of same-level areas whose polygons touch this one (a shared
        border or just a corner), sorted. An enclave and the grid around it are
        neighbours. KeyError if unknown."""
        self._require(area_id)
        return self._neighbours.get(area_id, ())

    # --- assignment -----------------------------------------------------

    def assign(self, lon: float, lat: float) -> str | None:
        """The smallest area covering (lon, lat), or None; see module docs."""
        return self.assign_many([lon], [lat])[0]

    def assign_many(
        self, lons: Sequence[float] | np.ndarray, lats: Sequence[float] | np.ndarray
    ) -> list[str | None]:
        """Vectorised `assign` for a batch; one answer per input point, in order."""
        x = np.asarray(lons, dtype=float)
        y = np.asarray(lats, dtype=float)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError("lons and lats must be 1-d sequences of the same length")
        n = x.shape[0]
        if n == 0:
            return []
        finite = np.isfinite(x) & np.isfinite(y)
        idx = np.flatnonzero(finite)
        points = shapely.points(x[idx], y[idx])
        # Bounding-box candidates from the tree, then an exact point-in-polygon
        # test against the prepared polygons (fast even for detailed borders).
        inp, cand = self._tree.query(points)
        hit = shapely.covers(self._geoms[cand], points[inp])
        none = len(self._areas)
        best = np.full(idx.shape[0], none, dtype=np.int64)
        np.minimum.at(best, inp[hit], cand[hit])
        out: list[str | None] = [None] * n
        for i, b in zip(idx.tolist(), best.tolist(), strict=True):
            if b != none:
                out[i] = self._ids[b]
        return out

    # --- internals ------------------------------------------------------

    def _require(self, area_id: str) -> Area:
        try:
            return self._by_id[area_id]
        except KeyError:
            raise KeyError(f"unknown area {area_id!r}") from None

    def _check_hierarchy(self) -> None:
        """Grids inside their district, no overlaps within a level."""
        for a in self._areas:
            if a.level != "grid":
                continue
            parent = self._by_id.get(a.parent or "")
            if parent is None or parent.level != "district":
                raise ValueError(f"grid {a.id!r}: parent {a.parent!r} is not a known district")
            if not parent.geometry.buffer(_CONTAINMENT_SLACK).covers(a.geometry):
                raise ValueError(f"grid {a.id!r} is not inside its district {a.parent!r}")
        left, right = self._tree.query(self._geoms, predicate="intersects")
        for i, j in zip(left.tolist(), right.tolist(), strict=True):
            a, b = self._areas[i], self._areas[j]
            if i < j and a.level == b.level:
                overlap = a.geometry.intersection(b.geometry).area
                if overlap > _OVERLAP_TOLERANCE:
                    raise ValueError(f"areas {a.id!r} and {b.id!r} overlap")

    def _touching_pairs(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, set[str]] = {}
        left, right = self._tree.query(self._geoms, predicate="touches")
        for i, j in zip(left.tolist(), right.tolist(), strict=True):
            a, b = self._areas[i], self._areas[j]
            if a.level == b.level and a.id != b.id:
                found.setdefault(a.id, set()).add(b.id)
        return {k: tuple(sorted(v)) for k, v in found.items()}


def parse_areas(doc: dict[str, Any]) -> list[Area]:
    """Areas from a GeoJSON FeatureCollection of Polygon/MultiPolygon features."""
    if doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise ValueError("areas must be a GeoJSON FeatureCollection")
    return [parse_feature(n, feature) for n, feature in enumerate(doc["features"])]


def parse_feature(n: int, feature: Any) -> Area:
    """One area from feature number ``n``: its properties plus its geometry."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ValueError(f"feature #{n} must be a GeoJSON Feature")
    geom = feature.get("geometry") or {}
    if geom.get("type") not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"feature #{n} must be a Polygon or MultiPolygon Feature")
    props = dict(feature.get("properties") or {})
    return Area.model_validate({**props, "geometry": shape(geom)})


def load_areas(path: Path = AREAS_PATH) -> AreaIndex:
    """Load and validate the city's areas (default: the bundled demo city)."""
    with path.open(encoding="utf-8") as f:
        return AreaIndex(parse_areas(json.load(f)))
