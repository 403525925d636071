"""``citywarn check``: the settings and every city file validated together, before anything starts.

Each file is read and validated on its own first, and every error is kept,
not just the first; then the references between files are followed (sensor
to area, kind to hazard, hazard to playbook). Each error is one line naming
the file, the item and the field, so an operator can fix a typo without
reading a traceback:

    config/city/sensors.yaml: sensors[wl-x-01].area: 'nowhere' is not an area in areas.geojson
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import shapely
import yaml
from pydantic import BaseModel, ValidationError

from config.areas import Area, AreaIndex, parse_feature
from config.assets import AssetRegister, asset_problems
from config.catalog import SENSOR_FAULT, Catalog
from config.lifecycle import LifecycleConfig, lifecycle_problems
from config.playbooks import Playbooks
from config.problems import Located
from config.settings import ENV_PREFIX, Settings, env_var
from config.taxonomy import FALLBACK_CATEGORY, Taxonomy
from config.yaml_docs import load_yaml

ENVIRONMENT = "environment"
# Mappings whose keys name items (a kind, a hazard, a category): shown as kinds[gas], not kinds.gas.
_ITEM_MAPPINGS = frozenset({"kinds", "hazards", "categories"})

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration error: the file (or the environment), the item and field, and what is wrong."""

    source: str
    where: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.where}: {self.message}" if self.where else f"{self.source}: {self.message}"
        )


@dataclass(frozen=True, slots=True)
class City:
    catalog: Catalog
    areas: AreaIndex
    playbooks: Playbooks
    taxonomy: Taxonomy


@dataclass
class CheckResult:
    problems: list[Problem] = field(default_factory=list)
    city: City | None = None
    # Worth telling, yet no reason to refuse to start (``unknown_variables``).
    warnings: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        """One line saying what was checked; only meaningful when there are no problems."""
        if self.city is None:
            return f"{len(self.problems)} configuration errors"
        c = self.city
        return (
            f"configuration ok: {len(c.catalog.sensors)} sensors of {len(c.catalog.kinds)} kinds, "
            f"{len(c.areas)} areas ({len(c.areas.districts())} districts, {len(c.areas.grids())} grids), "
            f"playbooks for {len(c.playbooks.hazards)} hazards, "
            f"{len(c.taxonomy.categories)} report categories"
        )


def settings_problems(exc: ValidationError) -> list[Problem]:
    """A settings ValidationError as one line per field, naming the environment variable."""
    return [
        Problem(ENVIRONMENT, env_var(str(err["loc"][0])) if err["loc"] else "", _message(err))
        for err in exc.errors()
    ]


def unknown_variables(environ: Mapping[str, str]) -> list[Problem]:
    """``CITYWARN_*`` variables that set nothing, each with the setting it may have meant.

    A misspelt variable leaves its setting at the default without a word: ``CITYWARN_DATABASE_ULR``
    keeps the state database on SQLite in ./var. A warning, not a refusal to start: Kubernetes
    gives every pod ``<SERVICE>_PORT``-style variables for each service in its namespace, so a
    service named citywarn puts ``CITYWARN_PORT`` and ``CITYWARN_SERVICE_HOST`` in the environment.
    Names are compared as pydantic-settings reads them, ignoring case.
    """
    known = {env_var(name) for name in Settings.model_fields}
    out = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else ""
        out.append(Problem(ENVIRONMENT, name, f"not a citywarn setting, ignored{hint}"))
    return out


def check(settings: Settings, *, detectors: Collection[str] | None = None) -> CheckResult:
    """Validate every city file and the references between them; ``detectors``: the known names."""
    result = CheckResult()
    if detectors is not None and settings.detector not in detectors:
        known = ", ".join(sorted(detectors))
        message = f"{settings.detector!r} is not a detector; known: {known}"
        result.problems.append(Problem(ENVIRONMENT, env_var("detector"), message))
    catalog = _load(settings.catalog_path, load_yaml, Catalog, result.problems)
    areas = _load_areas(settings.areas_path, result.problems)
    playbooks = _load(settings.playbooks_path, load_yaml, Playbooks, result.problems)
    taxonomy = _load(settings.taxonomy_path, load_yaml, Taxonomy, result.problems)
    if catalog is None or areas is None or playbooks is None or taxonomy is None:
        return result
    city = City(catalog=catalog, areas=areas, playbooks=playbooks, taxonomy=taxonomy)
    result.problems += _references(city, settings)
    register = settings.asset_register()
    assets = _load(register, load_yaml, AssetRegister, result.problems) if register is not None else None
    if assets is not None and register is not None:
        source = _shown(register)
        result.problems += [Problem(source, f"assets[{i}]", m) for i, m in asset_problems(assets, areas)]
    lifecycle = _load(settings.lifecycle_path, load_yaml, LifecycleConfig, result.problems)
    if lifecycle is not None:
        source = _shown(settings.lifecycle_path)
        result.problems += [Problem(source, where, m) for where, m in lifecycle_problems(lifecycle)]
    if not result.problems:
        result.city = city
    return result


# --- reading and validating one file -------------------------------------------------------------


def _shown(path: Path) -> str:
    """The path as the operator would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read(path: Path, parse: Callable[[str], Any], problems: list[Problem]) -> tuple[bool, Any]:
    """(True, document), or (False, None) with the reason added to ``problems``."""
    source = _shown(path)
    try:
        return True, parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(Problem(source, "", "cannot read: no such file"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(source, "", f"cannot read: {exc}"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.append(Problem(source, where, f"not valid YAML: {exc.problem}"))
    except yaml.YAMLError as exc:
        problems.append(Problem(source, "", f"not valid YAML: {exc}"))
    except json.JSONDecodeError as exc:
        problems.append(
            Problem(source, f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}")
        )
    return False, None


def _load(path: Path, parse: Callable[[str], Any], model: type[M], problems: list[Problem]) -> M | None:
    ok, doc = _read(path, parse, problems)
    if not ok:
        return None
    source = _shown(path)
    located: list[Located] = []
    try:
        loaded = model.model_validate(doc, context={"problems": located})
    except ValidationError as exc:
        problems += [Problem(source, _where(err["loc"], doc), _message(err)) for err in exc.errors()]
        return None
    problems += [Problem(source, where, message) for where, message in located]
    return None if located else loaded


def _load_areas(path: Path, problems: list[Problem]) -> AreaIndex | None:
    ok, doc = _read(path, json.loads, problems)
    if not ok:
        return None
    source = _shown(path)
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list) or doc.get("type") != "FeatureCollection":
        problems.append(Problem(source, "", "not a GeoJSON FeatureCollection"))
        return None
    areas: list[Area] = []
    before = len(problems)
    for n, feature in enumerate(features):
        item = _feature_label(n, feature)
        try:
            areas.append(parse_feature(n, feature))
        except ValidationError as exc:
            problems += [
                Problem(source, f"features[{item}]" + _where(err["loc"], None, nested=True), _message(err))
                for err in exc.errors()
            ]
        except (ValueError, TypeError, shapely.errors.ShapelyError) as exc:
            problems.append(Problem(source, f"features[{item}]", str(exc)))
    if len(problems) > before:
        return None
    try:
        return AreaIndex(areas)
    except ValueError as exc:
        problems.append(Problem(source, "", str(exc)))
        return None


def _feature_label(n: int, feature: Any) -> str:
    props = feature.get("properties") if isinstance(feature, dict) else None
    area_id = props.get("id") if isinstance(props, dict) else None
    return str(area_id) if area_id else f"#{n}"


def _where(loc: tuple[int | str, ...], doc: Any, *, nested: bool = False) -> str:
    """``('sensors', 3, 'lat')`` as ``sensors[wl-x-01].lat``: list items by their id where they have one."""
    out = ""
    node, parent_key = doc, None
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself was invalid"
            continue
        child = None
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            label = item.get("id") if isinstance(item, dict) and item.get("id") else part
            out += f"[{label}]"
            child = item
        else:
            out += f"[{part}]" if parent_key in _ITEM_MAPPINGS else (f".{part}" if out or nested else part)
            child = node.get(part) if isinstance(node, dict) else None
        node, parent_key = child, part
    return out


def _message(err: Any) -> str:
    """pydantic's message, plus the offending value when it is a plain value worth quoting."""
    value = err.get("input")
    if err["type"] == "missing" or isinstance(value, dict | list | tuple | set):
        return str(err["msg"])
    return f"{err['msg']} (got {value!r})"


# --- references between files ---------------------------------------------------------------------


def _references(city: City, settings: Settings) -> list[Problem]:
    sensors_file, taxonomy_file = _shown(settings.catalog_path), _shown(settings.taxonomy_path)
    areas_name, playbooks_name = settings.areas_path.name, settings.playbooks_path.name
    taxonomy_name = settings.taxonomy_path.name
    problems: list[Problem] = []

    for s in city.catalog.sensors:
        if s.area not in city.areas:
            message = f"{s.area!r} is not an area in {areas_name}"
            problems.append(Problem(sensors_file, f"sensors[{s.id}].area", message))
            continue
        found = city.areas.assign(s.lon, s.lat)
        if found != s.area and (found is None or city.areas.parent_of(found) != s.area):
            place = f"in {found!r}" if found else "outside every area"
            message = f"({s.lon}, {s.lat}) lies {place}, not in its area {s.area!r}"
            problems.append(Problem(sensors_file, f"sensors[{s.id}].lat/lon", message))

    hazards = city.taxonomy.hazards()
    # Hazards that can open a warning: every kind's, and every report category's but the fallback's.
    raised: set[str] = set()
    for kind_id, kind in city.catalog.kinds.items():
        raised.add(kind.hazard)
        where = f"kinds[{kind_id}].hazard"
        if kind.hazard not in hazards:
            problems.append(
                Problem(sensors_file, where, f"{kind.hazard!r} is not a hazard in {taxonomy_name}")
            )
        if kind.hazard not in city.playbooks.hazards:
            problems.append(
                Problem(sensors_file, where, f"{kind.hazard!r} has no playbook in {playbooks_name}")
            )
    if city.catalog.kinds:
        # Every kind's sensors can fail (an impossible value needs no rule beyond the valid range).
        raised.add(SENSOR_FAULT)
        if SENSOR_FAULT not in city.playbooks.hazards:
            message = f"sensor health raises {SENSOR_FAULT!r}, which has no playbook in {playbooks_name}"
            problems.append(Problem(sensors_file, "kinds", message))
    for category_id, category in city.taxonomy.categories.items():
        if category_id == FALLBACK_CATEGORY:
            continue
        raised.add(category.hazard)
        if category.hazard not in city.playbooks.hazards:
            message = f"{category.hazard!r} has no playbook in {playbooks_name}"
            problems.append(Problem(taxonomy_file, f"categories[{category_id}].hazard", message))

    playbooks_file = _shown(settings.playbooks_path)
    for hazard in city.playbooks.hazards:
        if hazard not in raised:
            message = f"no sensor kind or report category raises {hazard!r}"
            problems.append(Problem(playbooks_file, f"hazards[{hazard}]", message))
    return problems
