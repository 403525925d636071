"""The sensors the service knows, each sensor's stored series, and sensors onboarded by admins.

Two sources, one list: the catalog file (``source: catalog``), changed only by
editing it and restarting, and the registry in the state database
(``source: registry``), which admins change here without a restart. A
registered sensor meets the file's rules (known kind, known area, a location
inside it, an interval the kind's stuck rule can judge) and ingest knows it
from the next request on: in this process at once, in a separate
``citywarn ingest`` within a second (``config.live_catalog``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import Now, TimeBounds, services, time_bounds
from app.auth.deps import require
from app.auth.roles import Permission, Principal
from app.services import Services
from app.store_reads import read_from_store
from config.catalog import Catalog, Sensor, Thresholds
from config.timeutil import EARLIEST, from_ns, to_ns
from ingest.schemas import ID_PATTERN
from store.sensor_registry import InvalidSensor, RegisteredSensor, SensorConflict, SensorNotFound

router = APIRouter(prefix="/v1/sensors", tags=["sensors"])
read = Depends(require(Permission.READ))
Admin = Annotated[Principal, Depends(require(Permission.ADMINISTER))]

MAX_RANGE = timedelta(days=31)
series_bounds = time_bounds(
    "start", "end", lower_doc="From (default: 24 h before end)", upper_doc="Until, exclusive (default: now)"
)

Source = Literal["catalog", "registry"]
# An id a reading can name (ingest.schemas.Reading), within the state database's column sizes.
SensorId = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
KindName = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
AreaId = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
Name = Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
Interval = Annotated[
    float, Field(gt=0, description="Seconds between reports, if not its kind's; its silence is judged by it.")
]
PathId = Annotated[str, Path(min_length=1, max_length=128)]

Answers = dict[int | str, dict[str, Any]]
_NOT_REGISTERED: Answers = {404: {"description": "No registered sensor has this id"}}
_FILE_SENSOR: Answers = {409: {"description": "The sensor is the catalog file's: change it there"}}
_TAKEN: Answers = {409: {"description": "The id is the catalog file's, or registered already"}}


class SensorOut(Sensor):
    unit: str
    hazard: str
    source: Source = Field(description="catalog: the catalog file; registry: registered over the API")


class RegisteredSensorOut(SensorOut):
    revision: int = Field(description="The registry's change number that made this version")
    created_at: datetime
    updated_at: datetime
    updated_by: str = Field(description="The label of the API key that made this version")


class ThresholdsIn(Thresholds):
    model_config = ConfigDict(allow_inf_nan=False)


class SensorIn(BaseModel):
    """A sensor to register: the catalog file's fields, each bounded as the API and the database need."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: SensorId
    kind: KindName
    area: AreaId
    name: Name = ""
    lat: Lat
    lon: Lon
    thresholds: ThresholdsIn | None = Field(
        default=None, description="Its own warning lines, if not its kind's"
    )
    expected_interval_s: Interval | None = None


class SensorPatch(BaseModel):
    """The fields to change; null clears ``thresholds`` or ``expected_interval_s`` (the kind's apply)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: KindName | None = None
    area: AreaId | None = None
    name: Name | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    thresholds: ThresholdsIn | None = None
    expected_interval_s: Interval | None = None


class SeriesPoint(BaseModel):
    ts: datetime
    value: float


class Series(BaseModel):
    sensor_id: str
    kind: str
    unit: str
    start: datetime
    end: datetime = Field(description="The end of the range served: at most 31 days after start")
    points: list[SeriesPoint]
    truncated: bool = Field(
        description="More points lie in the range asked for: past `limit`, or after `end`. Ask again "
        "from the last point's time or from `end`."
    )


def _out(svc: Services, catalog: Catalog, sensor: Sensor) -> SensorOut:
    kind = catalog.kinds[sensor.kind]
    source: Source = "catalog" if svc.catalog.sensor(sensor.id) is not None else "registry"
    return SensorOut(**sensor.model_dump(), unit=kind.unit, hazard=kind.hazard, source=source)


def _registered_out(svc: Services, found: RegisteredSensor) -> RegisteredSensorOut:
    kind = svc.catalog.kinds[found.sensor.kind]
    return RegisteredSensorOut(
        **found.sensor.model_dump(),
        unit=kind.unit,
        hazard=kind.hazard,
        source="registry",
        revision=found.revision,
        created_at=found.created_at,
        updated_at=found.updated_at,
        updated_by=found.updated_by,
    )


def _invalid(exc: InvalidSensor) -> RequestValidationError:
    """A 422 naming each body field at fault, shaped like FastAPI's own so one handler words every 422."""
    return RequestValidationError(
        [
            {"loc": ("body", *field.split(".")), "msg": reason, "type": "value_error"}
            for field, reason in exc.problems
        ]
    )


@router.get("", response_model=list[SensorOut], dependencies=[read])
def list_sensors(
    svc: Annotated[Services, Depends(services)],
    area: Annotated[str | None, Query(max_length=128)] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> list[SensorOut]:
    """Every sensor known now: the catalog file's, then those registered, each saying which."""
    catalog = svc.live_catalog.current()
    return [
        _out(svc, catalog, s)
        for s in catalog.sensors
        if (area is None or s.area == area) and (kind is None or s.kind == kind)
    ]


@router.post("", status_code=201, response_model=RegisteredSensorOut, responses=_TAKEN)
def register_sensor(
    body: SensorIn,
    svc: Annotated[Services, Depends(services)],
    admin: Admin,
    at: Now,
) -> RegisteredSensorOut:
    """Onboard a sensor without a restart: its readings are taken from the next request on."""
    try:
        found = svc.registry.add(Sensor.model_validate(body.model_dump()), actor=admin.label, now=at)
    except SensorConflict as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except InvalidSensor as exc:
        raise _invalid(exc) from exc
    svc.live_catalog.refresh()
    return _registered_out(svc, found)


@router.get(
    "/{sensor_id}",
    response_model=SensorOut,
    dependencies=[read],
    responses={404: {"description": "No such sensor"}},
)
def get_sensor(sensor_id: PathId, svc: Annotated[Services, Depends(services)]) -> SensorOut:
    catalog = svc.live_catalog.current()
    sensor = catalog.sensor(sensor_id)
    if sensor is None:
        raise HTTPException(404, detail=f"no sensor {sensor_id}")
    return _out(svc, catalog, sensor)


@router.patch(
    "/{sensor_id}", response_model=RegisteredSensorOut, responses={**_NOT_REGISTERED, **_FILE_SENSOR}
)
def change_sensor(
    sensor_id: PathId,
    body: SensorPatch,
    svc: Annotated[Services, Depends(services)],
    admin: Admin,
    at: Now,
) -> RegisteredSensorOut:
    """Change a registered sensor's fields; the result is checked whole, as a new registration is."""
    try:
        found = svc.registry.update(sensor_id, body.model_dump(exclude_unset=True), actor=admin.label, now=at)
    except SensorConflict as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except SensorNotFound as exc:
        raise HTTPException(404, detail=f"no registered sensor {sensor_id}") from exc
    except InvalidSensor as exc:
        raise _invalid(exc) from exc
    svc.live_catalog.refresh()
    return _registered_out(svc, found)


@router.delete(
    "/{sensor_id}", status_code=204, response_class=Response, responses={**_NOT_REGISTERED, **_FILE_SENSOR}
)
def delete_sensor(
    sensor_id: PathId,
    svc: Annotated[Services, Depends(services)],
    admin: Admin,
    at: Now,
) -> Response:
    """Retire a registered sensor: its readings are refused from the next request on; its data stay."""
    try:
        svc.registry.delete(sensor_id, actor=admin.label, now=at)
    except SensorConflict as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except SensorNotFound as exc:
        raise HTTPException(404, detail=f"no registered sensor {sensor_id}") from exc
    svc.live_catalog.refresh()
    return Response(status_code=204)


@router.get("/{sensor_id}/series", response_model=Series, dependencies=[read])
async def series(
    sensor_id: PathId,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    bounds: Annotated[TimeBounds, Depends(series_bounds)],
    limit: Annotated[int, Query(ge=1, le=50_000)] = 10_000,
) -> Response:
    """A sensor's readings; made on a pool thread, a bounded number at once (app.store_reads)."""

    def answer() -> Response:
        return _series(sensor_id, svc, at, bounds, limit)

    return await read_from_store(answer, svc.settings.store_reads_in_flight)


def _series(sensor_id: str, svc: Services, at: datetime, bounds: TimeBounds, limit: int) -> Response:
    catalog = svc.live_catalog.current()
    sensor = catalog.sensor(sensor_id)
    if sensor is None:
        raise HTTPException(404, detail=f"no sensor {sensor_id}")
    end = bounds.upper or at
    start = bounds.lower or max(EARLIEST, end - timedelta(hours=24))
    # A range longer than MAX_RANGE is served up to ``start + MAX_RANGE`` (the answer's ``end``) and
    # marked ``truncated``, as one with more than ``limit`` points is. An empty or reversed range
    # holds no points.
    served_end = min(end, start + MAX_RANGE)
    points = (
        svc.store.read(sensor_id, to_ns(start), to_ns(served_end), limit=limit + 1) if start < end else []
    )
    answer = Series(
        sensor_id=sensor_id,
        kind=sensor.kind,
        unit=catalog.kinds[sensor.kind].unit,
        start=start,
        end=max(served_end, start),
        truncated=len(points) > limit or served_end < end,
        points=[SeriesPoint(ts=from_ns(p.ts_ns), value=p.value) for p in points[:limit]],
    )
    # Serialised here in one pydantic call: a returned model is validated again and walked value by
    # value by FastAPI (response_model stays, for the contract).
    return Response(answer.model_dump_json(), media_type="application/json")
