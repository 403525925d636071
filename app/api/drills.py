"""Drills: start a named scenario as an exercise, follow it, stop it (``alerts.drills``).

Its warnings are the live warning service's, marked ``exercise`` with the drill's id; warning
lists and the CAP feed leave them out unless asked (``exercise=true`` or ``any``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from alerts.drill_store import AlreadyRunning, Drill
from alerts.drills import DrillRunner, UnknownScenario
from app.api.deps import services
from app.api.problems import INVALID_REQUEST
from app.auth.deps import require
from app.auth.roles import Permission, Principal
from app.services import Services
from app.workers import DRILL_SCENARIOS

router = APIRouter(prefix="/v1/drills", tags=["drills"])
Driller = Annotated[Principal, Depends(require(Permission.DRILL))]
read = Depends(require(Permission.READ))
DrillId = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]+$", description="A drill's id")]
SCENARIO_NAMES: list[JsonValue] = [*sorted(DRILL_SCENARIOS)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No drill has this id"}}


class DrillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Declared as the names offered, checked in code: an unknown one is a 422 that lists them.
    scenario: str = Field(
        max_length=64,
        pattern=r"^[a-z0-9-]+$",
        description="The scenario to replay",
        json_schema_extra={"enum": SCENARIO_NAMES},
    )
    speed: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Scenario seconds per wall-clock second (60: an hour a minute); none: as fast as it can",
    )
    # U+0000 cannot be stored (PostgreSQL text), so the schema says so rather than a late 422.
    note: str = Field(default="", max_length=2000, pattern=r"^[^\x00]*$")


class DrillPage(BaseModel):
    items: list[Drill]
    total: int
    limit: int
    offset: int


def runner(request: Request, _svc: Annotated[Services, Depends(services)]) -> DrillRunner:
    """The app's drill runner (``app.workers.build_drill_runner``); it works on the state database."""
    return request.app.state.drills  # type: ignore[no-any-return]


Runner = Annotated[DrillRunner, Depends(runner)]


@router.post(
    "",
    status_code=202,
    response_model=Drill,
    responses={409: {"description": "A drill of this scenario is running"}},
    summary="Start a drill: the scenario replayed, its warnings marked exercise",
)
def start_drill(body: DrillIn, who: Driller, drills: Runner) -> Drill:
    try:
        return drills.start(body.scenario, speed=body.speed, note=body.note, requested_by=who.label)
    except UnknownScenario as exc:
        raise HTTPException(
            422,
            detail={
                "type": INVALID_REQUEST,
                "detail": str(exc),
                "errors": [
                    {
                        "field": "body.scenario",
                        "reason": f"unknown; known: {', '.join(exc.known)}",
                        "value": body.scenario,
                    }
                ],
                "known": exc.known,
            },
        ) from None
    except AlreadyRunning:
        raise HTTPException(409, detail=f"a drill of {body.scenario} is running; stop it first") from None


@router.get("", response_model=DrillPage, dependencies=[read], summary="Drills, newest first")
def list_drills(
    drills: Runner,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DrillPage:
    items, total = drills.store.page(limit=limit, offset=offset)
    return DrillPage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{drill_id}",
    response_model=Drill,
    responses=NOT_FOUND,
    dependencies=[read],
    summary="A drill: its state, counts and the exercise warnings it opened",
)
def get_drill(drill_id: DrillId, drills: Runner) -> Drill:
    found = drills.store.get(drill_id)
    if found is None:
        raise HTTPException(404, detail=f"no drill {drill_id}")
    return found


@router.delete(
    "/{drill_id}",
    response_model=Drill,
    responses=NOT_FOUND,
    summary="Stop a drill (one that has ended is answered as it ended); its warnings stay, marked exercise",
)
def stop_drill(drill_id: DrillId, _who: Driller, drills: Runner) -> Drill:
    if drills.store.get(drill_id) is None:
        raise HTTPException(404, detail=f"no drill {drill_id}")
    stopped = drills.stop(drill_id)
    assert stopped is not None
    return stopped
