"""The city's asset register: the pumps, shelters, underpasses, schools, hospitals and valves a
recommendation can name, so an action says which pump and where, not just "pumps".

Loaded from ``config/city/assets.yaml`` and checked against the areas like the sensor catalog:
an asset's area must exist and its location must lie inside it (or inside one of its grids, for a
district), or a recommendation would send a crew to the wrong community.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.areas import AreaIndex
from config.yaml_docs import load_yaml

ASSETS_PATH = Path(__file__).parent / "city" / "assets.yaml"

AssetKind = Literal[
    "pump", "shelter", "underpass", "school", "hospital", "valve", "care_home", "fire_station", "substation"
]
EARTH_RADIUS_M = 6_371_008.8  # the mean Earth radius (IUGG)


class Asset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: AssetKind
    name: str = Field(min_length=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    capacity: int | None = Field(default=None, ge=0)  # people for a shelter, m³/h for a pump, beds ...
    owner: str = Field(min_length=1)
    area: str = Field(min_length=1, max_length=128)


class AssetRegister(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    assets: list[Asset] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> AssetRegister:
        seen: set[str] = set()
        for a in self.assets:
            if a.id in seen:
                raise ValueError(f"asset id {a.id!r} appears twice")
            seen.add(a.id)
        return self

    def of_kind(self, kind: str) -> list[Asset]:
        return [a for a in self.assets if a.kind == kind]


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres: exact enough for a city, and stable for nearby points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def asset_problems(register: AssetRegister, areas: AreaIndex) -> list[tuple[str, str]]:
    """(asset id, what is wrong): each asset in a known area, and located inside it (or inside one of
    its grids, for a district)."""
    problems = []
    for a in register.assets:
        if a.area not in areas:
            problems.append((a.id, f"area: {a.area!r} is not an area"))
            continue
        found = areas.assign(a.lon, a.lat)
        if found == a.area or (found is not None and areas.parent_of(found) == a.area):
            continue
        place = f"in {found!r}" if found else "outside every area"
        problems.append((a.id, f"lat, lon: ({a.lon}, {a.lat}) lies {place}, not in its area {a.area!r}"))
    return problems


def load_assets(path: Path, areas: AreaIndex | None = None) -> AssetRegister:
    """The register as validated; with ``areas``, a misplaced asset is a ValueError naming each one."""
    with path.open(encoding="utf-8") as f:
        register = AssetRegister.model_validate(load_yaml(f) or {})
    if areas is not None:
        problems = asset_problems(register, areas)
        if problems:
            raise ValueError(f"{path}: " + "; ".join(f"assets[{i}].{m}" for i, m in problems))
    return register
