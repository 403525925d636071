"""A warning's recommendations with what operators did about them: list, accept, reject, mark done.

The steps allowed (``alerts.recommendation_log``): proposed -> accepted or rejected, rejected ->
accepted, accepted -> done; any other is a 409 problem. Who acted is the API key's label and role.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from alerts.exceptions import InvalidTransition
from alerts.recommendation_log import RecommendationLog, RecommendationStep, State, Step, state_of
from app.api.deps import Now, WarningId, services
from app.api.warnings import NOT_NOW, Actor
from app.auth.deps import require
from app.auth.roles import Permission
from app.services import Services

router = APIRouter(prefix="/v1/warnings", tags=["recommendations"])
RecommendationId = Annotated[
    str, Path(max_length=64, pattern=r"^[a-z0-9-]+$", description="A recommendation's rid, from the list")
]


class StepIn(BaseModel):
    """A note to go with the step; who took it is the API key's label, never the body's say."""

    model_config = ConfigDict(extra="forbid")

    # U+0000 cannot be stored (PostgreSQL text), so the schema says so rather than a late 422.
    note: str = Field(default="", max_length=2000, pattern=r"^[^\x00]*$")


StepBody = Annotated[StepIn | None, Body()]


class RecommendationOut(BaseModel):
    rid: str = Field(description="Stable while the action stays in the warning's playbook steps")
    rank: int = Field(description="1 is the most urgent: shortest deadline, then the playbook's order")
    level: str | None = Field(description="The playbook level the action belongs to")
    what: str
    who: str
    within_minutes: int | None
    by: str | None = Field(description="Deadline: the triggering observation's time plus within_minutes")
    why: str = Field(description="What triggered the level")
    where: dict[str, Any] = Field(description="area, area_name, population, sensors, and the assets named")
    state: State
    history: list[RecommendationStep]


class RecommendationList(BaseModel):
    warning_id: str
    level: str
    items: list[RecommendationOut]


@router.get(
    "/{warning_id}/recommendations",
    response_model=RecommendationList,
    dependencies=[Depends(require(Permission.READ_WARNINGS))],
    summary="The warning's recommendations, most urgent first, with who accepted, rejected or did each",
)
def list_recommendations(
    warning_id: WarningId, svc: Annotated[Services, Depends(services)]
) -> RecommendationList:
    warning, recs = _current(svc, warning_id)
    history = RecommendationLog(svc.engine).history(warning_id)
    return RecommendationList(
        warning_id=warning_id, level=warning.level, items=[_out(r, history.get(r["rid"], [])) for r in recs]
    )


def _act(step: Step) -> Any:
    def act(
        warning_id: WarningId,
        rid: RecommendationId,
        who: Actor,
        svc: Annotated[Services, Depends(services)],
        at: Now,
        body: StepBody = None,
    ) -> RecommendationOut:
        _, recs = _current(svc, warning_id)
        rec = next((r for r in recs if r["rid"] == rid), None)
        if rec is None:
            raise HTTPException(404, detail=f"warning {warning_id} has no recommendation {rid}")
        try:
            history = RecommendationLog(svc.engine).record(
                warning_id,
                rid,
                step,
                now=at,
                actor=who.label,
                actor_role=who.role.value,
                note=body.note if body is not None else "",
            )
        except InvalidTransition as exc:
            raise HTTPException(409, detail=str(exc)) from None
        return _out(rec, history)

    return act


for _verb, _step in (("accept", "accepted"), ("reject", "rejected"), ("done", "done")):
    router.post(
        f"/{{warning_id}}/recommendations/{{rid}}/{_verb}",
        response_model=RecommendationOut,
        responses=NOT_NOW,
        summary=f"Record the recommendation as {_step}, by the calling key",
        operation_id=f"recommendation_{_verb}",
    )(_act(_step))  # type: ignore[arg-type]


def _current(svc: Services, warning_id: str) -> tuple[Any, list[dict[str, Any]]]:
    """The warning and its current recommendations (those issued before rids existed are left out)."""
    warning = svc.warnings.repository.summary(warning_id)
    if warning is None:
        raise HTTPException(404, detail=f"no warning {warning_id}")
    recs = [r for r in warning.recommendations if isinstance(r.get("rid"), str)]
    return warning, sorted(recs, key=lambda r: r.get("rank", 0))


def _out(r: dict[str, Any], history: list[RecommendationStep]) -> RecommendationOut:
    return RecommendationOut(
        rid=r["rid"],
        rank=r.get("rank", 0),
        level=r.get("level"),
        what=str(r.get("what", "")),
        who=str(r.get("who", "")),
        within_minutes=r.get("within_minutes"),
        by=r.get("by"),
        why=str(r.get("why", "")),
        where=dict(r.get("where", {})),
        state=state_of(history),
        history=history,
    )
