"""The city map and point-to-area assignment (config/areas.py, config/city/areas.geojson)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import LinearRing, Polygon, box
from shapely.ops import unary_union

from config.areas import AREAS_PATH, Area, AreaIndex, load_areas, parse_areas


@pytest.fixture(scope="module")
def index() -> AreaIndex:
    return load_areas()


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return json.loads(AREAS_PATH.read_text(encoding="utf-8"))


def _area(id_: str, level: str, geom: Polygon, parent: str | None = None) -> Area:
    return Area(id=id_, name=id_, level=level, parent=parent, geometry=geom)  # type: ignore[arg-type]


# --- the bundled map ------------------------------------------------------


def test_map_has_districts_and_grids(index: AreaIndex) -> None:
    assert len(index.districts()) >= 3
    assert len(index.grids()) >= 12
    for g in index.grids():
        assert g.id.startswith("g-") and g.parent is not None
        assert index.parent_of(g.id) == g.parent
        assert g.parent in {d.id for d in index.districts()}
    for d in index.districts():
        assert d.id.startswith("d-") and d.parent is None and index.parent_of(d.id) is None
        assert index.grids(d.id), f"{d.id} has no grids"


def test_rings_closed_and_rfc7946_wound(raw: dict[str, Any]) -> None:
    for f in raw["features"]:
        rings = f["geometry"]["coordinates"]
        for n, ring in enumerate(rings):
            assert ring[0] == ring[-1], f"{f['properties']['id']} ring {n} not closed"
            ccw = LinearRing(ring).is_ccw
            assert ccw if n == 0 else not ccw, f"{f['properties']['id']} ring {n} wound wrongly"
        assert shapely.is_valid(shapely.geometry.shape(f["geometry"]))


def test_properties(raw: dict[str, Any]) -> None:
    for f in raw["features"]:
        p = f["properties"]
        assert set(p) <= {"id", "name", "name_zh", "level", "parent", "population"}
        assert p["level"] in ("district", "grid")
        assert p["population"] is None or isinstance(p["population"], int)


def test_grids_tile_their_district(index: AreaIndex) -> None:
    for d in index.districts():
        grids = index.grids(d.id)
        union = unary_union([g.geometry for g in grids])
        assert union.symmetric_difference(d.geometry).area < 1e-12
        for i, a in enumerate(grids):
            for b in grids[i + 1 :]:
                assert a.geometry.intersection(b.geometry).area < 1e-12


def test_districts_share_borders(index: AreaIndex) -> None:
    for d in index.districts():
        for other in index.neighbours(d.id):
            shared = d.geometry.intersection(index.area(other).geometry)  # type: ignore[union-attr]
            assert shared.area < 1e-12
        assert any(
            d.geometry.intersection(index.area(o).geometry).length > 0  # type: ignore[union-attr]
            for o in index.neighbours(d.id)
        )


def test_one_grid_has_a_hole_filled_by_an_enclave(index: AreaIndex) -> None:
    holed = [g for g in index.grids() if isinstance(g.geometry, Polygon) and g.geometry.interiors]
    assert [g.id for g in holed] == ["g-lakeside-03"]
    hole = Polygon(holed[0].geometry.interiors[0])
    enclave = index.area("g-lakeside-04")
    assert enclave is not None
    assert enclave.geometry.symmetric_difference(hole).area < 1e-12


# --- assignment -----------------------------------------------------------


def test_point_inside_each_grid(index: AreaIndex) -> None:
    for g in index.grids():
        p = g.geometry.representative_point()
        assert index.assign(p.x, p.y) == g.id


def test_points_outside_every_area(index: AreaIndex) -> None:
    x0, y0, x1, y1 = unary_union([d.geometry for d in index.districts()]).bounds
    assert index.assign(0.0, 0.0) is None
    assert index.assign(x1 + 0.01, (y0 + y1) / 2) is None
    assert index.assign((x0 + x1) / 2, y0 - 0.01) is None
    assert index.assign(math.nan, 30.55) is None
    assert index.assign(114.3, math.inf) is None


def test_point_on_shared_border_goes_to_smaller_grid(index: AreaIndex) -> None:
    a, b = index.area("g-oldtown-05"), index.area("g-oldtown-02")
    assert a is not None and b is not None and "g-oldtown-02" in index.neighbours(a.id)
    others = {c for g in index.grids() if g.id not in (a.id, b.id) for c in g.geometry.exterior.coords}
    shared = set(a.geometry.exterior.coords) & set(b.geometry.exterior.coords) - others
    assert shared, "expected an edge vertex shared only by these two grids"
    x, y = sorted(shared)[0]
    assert a.geometry.covers(shapely.Point(x, y)) and b.geometry.covers(shapely.Point(x, y))
    winner = min((a, b), key=lambda g: (g.geometry.area, g.id))
    assert index.assign(x, y) == winner.id
    assert index.assign_many([x] * 3, [y] * 3) == [winner.id] * 3


def test_border_tie_broken_by_id() -> None:
    left, right = box(0, 0, 1, 1), box(1, 0, 2, 1)
    district = _area("d-x", "district", box(0, 0, 2, 1))
    idx = AreaIndex([
        district,
        _area("g-b", "grid", right, "d-x"),
        _area("g-a", "grid", left, "d-x"),
    ])  # fmt: skip
    assert idx.assign(1.0, 0.5) == "g-a"  # equal areas: lower id
    assert idx.assign(1.5, 0.5) == "g-b"
    assert idx.assign(0.0, 0.0) == "g-a"  # outer corner is still covered
    assert idx.assign(2.0, 0.5) == "g-b"


def test_point_in_hole_is_not_in_the_holed_grid(index: AreaIndex) -> None:
    holed = index.area("g-lakeside-03")
    assert holed is not None and isinstance(holed.geometry, Polygon)
    lake = Polygon(holed.geometry.interiors[0])
    p = lake.representative_point()
    assert not holed.geometry.covers(p)
    assert index.assign(p.x, p.y) == "g-lakeside-04"
    # A point on the hole's ring is covered by both; the smaller (the enclave) wins.
    x, y = holed.geometry.interiors[0].coords[0]
    assert index.assign(x, y) == "g-lakeside-04"


def test_hole_without_enclave_falls_to_district_or_nothing() -> None:
    ring = Polygon(box(0, 0, 3, 3).exterior.coords, [box(1, 1, 2, 2).exterior.coords])
    grid_only = AreaIndex([
        _area("d-x", "district", box(0, 0, 3, 3)),
        _area("g-ring", "grid", ring, "d-x"),
    ])  # fmt: skip
    assert grid_only.assign(1.5, 1.5) == "d-x"
    assert grid_only.assign(0.5, 0.5) == "g-ring"
    lake = AreaIndex([_area("d-x", "district", ring)])
    assert lake.assign(1.5, 1.5) is None


def test_batch_agrees_with_single(index: AreaIndex) -> None:
    rng = np.random.default_rng(3)
    x0, y0, x1, y1 = unary_union([d.geometry for d in index.districts()]).bounds
    lons = list(rng.uniform(x0 - 0.01, x1 + 0.01, 3000))
    lats = list(rng.uniform(y0 - 0.01, y1 + 0.01, 3000))
    for g in index.grids():  # every vertex: borders, corners, hole rings
        for x, y in g.geometry.exterior.coords:
            lons.append(x)
            lats.append(y)
    lons += [math.nan, 114.3]
    lats += [30.55, math.nan]
    batch = index.assign_many(lons, lats)
    assert batch == [index.assign(x, y) for x, y in zip(lons, lats, strict=True)]
    assert batch.count(None) > 0 and len(set(batch) - {None}) == len(index.grids())
    assert index.assign_many(np.asarray(lons), np.asarray(lats)) == batch
    assert index.assign_many([], []) == []
    with pytest.raises(ValueError):
        index.assign_many([1.0, 2.0], [1.0])


# --- neighbours and look-ups ----------------------------------------------


def test_neighbours(index: AreaIndex) -> None:
    assert index.neighbours("g-lakeside-04") == ("g-lakeside-03",)
    assert "g-lakeside-04" in index.neighbours("g-lakeside-03")
    assert set(index.neighbours("d-riverside")) == {"d-oldtown", "d-northport", "d-lakeside"}
    # Centre grid of Old Town touches every other Old Town grid.
    assert set(index.neighbours("g-oldtown-05")) == {
        g.id for g in index.grids("d-oldtown") if g.id != "g-oldtown-05"
    }
    # Grids across the river, in different districts, are neighbours too.
    assert "g-oldtown-03" in index.neighbours("g-riverside-05")
    for a in [*index.districts(), *index.grids()]:
        for n in index.neighbours(a.id):
            other = index.area(n)
            assert other is not None and other.level == a.level
            assert a.id in index.neighbours(n)
            assert a.geometry.touches(other.geometry)


def test_lookups(index: AreaIndex) -> None:
    area = index.area("g-riverside-05")
    assert area is not None and area.parent == "d-riverside" and area.name_zh
    assert index.area("g-nowhere") is None
    assert "d-oldtown" in index and "g-nowhere" not in index
    assert len(index) == len(index.districts()) + len(index.grids())
    with pytest.raises(KeyError):
        index.neighbours("g-nowhere")
    with pytest.raises(KeyError):
        index.parent_of("g-nowhere")


# --- validation -----------------------------------------------------------


def _doc(*features: tuple[dict[str, Any], Polygon]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": p, "geometry": shapely.geometry.mapping(g)} for p, g in features
        ],
    }


def _district(id_: str = "d-x", geom: Polygon | None = None) -> tuple[dict[str, Any], Polygon]:
    props = {"id": id_, "name": id_, "level": "district", "parent": None}
    return props, geom or box(0, 0, 2, 2)


def _grid(id_: str, geom: Polygon, parent: str = "d-x") -> tuple[dict[str, Any], Polygon]:
    return {"id": id_, "name": id_, "level": "grid", "parent": parent}, geom


def test_rejects_overlapping_grids() -> None:
    doc = _doc(_district(), _grid("g-a", box(0, 0, 1.2, 2)), _grid("g-b", box(0.8, 0, 2, 2)))
    with pytest.raises(ValueError, match="overlap"):
        AreaIndex(parse_areas(doc))


def test_rejects_grid_outside_its_district() -> None:
    doc = _doc(_district(), _grid("g-a", box(1, 1, 3, 3)))
    with pytest.raises(ValueError, match="not inside"):
        AreaIndex(parse_areas(doc))


def test_rejects_bad_records() -> None:
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    with pytest.raises(ValueError, match="invalid polygon"):
        parse_areas(_doc(_district(geom=bowtie)))
    with pytest.raises(ValueError, match="parent"):
        AreaIndex(parse_areas(_doc(_district(), _grid("g-a", box(0, 0, 1, 1), parent="d-y"))))
    with pytest.raises(ValueError, match="appears twice"):
        AreaIndex(parse_areas(_doc(_district(), _district())))
    typo = _doc(_district())
    typo["features"][0]["properties"]["populaton"] = 5
    with pytest.raises(ValueError):
        parse_areas(typo)
    with pytest.raises(ValueError, match="FeatureCollection"):
        parse_areas({"type": "Feature"})
