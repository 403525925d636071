"""What operators did with a warning's recommendations: accepted, rejected, done, by whom and when.

One row per step, never updated, so the log is the record. A recommendation starts ``proposed`` (no
row); the steps allowed are proposed -> accepted or rejected, rejected -> accepted (reconsidered),
accepted -> done. "done" needs an accepted action first: a job nobody took on cannot be finished.
Each step of one recommendation has its number, unique with it, so two operators acting on the
same state at once cannot both succeed: the second insert fails and becomes a conflict.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel

from alerts.exceptions import InvalidTransition
from config.timeutil import as_utc

State = Literal["proposed", "accepted", "rejected", "done"]
Step = Literal["accepted", "rejected", "done"]
NEXT: dict[str, frozenset[str]] = {
    "proposed": frozenset({"accepted", "rejected"}),
    "rejected": frozenset({"accepted"}),
    "accepted": frozenset({"done"}),
    "done": frozenset(),
}

metadata = sa.MetaData()

steps = sa.Table(
    "recommendation_steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("warning_id", sa.String(36), nullable=False),
    sa.Column("rid", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("actor_role", sa.String(16)),
    sa.Column("note", sa.Text, nullable=False),
    sa.UniqueConstraint("warning_id", "rid", "seq", name="recommendation_step_once"),
)


class RecommendationStep(BaseModel):
    state: Step
    at: datetime
    actor: str
    actor_role: str | None
    note: str


class RecommendationLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def history(self, warning_id: str) -> dict[str, list[RecommendationStep]]:
        """Each recommendation's steps, oldest first, by rid."""
        c = steps.c
        query = sa.select(steps).where(c.warning_id == warning_id).order_by(c.rid, c.seq)
        out: dict[str, list[RecommendationStep]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                out.setdefault(row["rid"], []).append(
                    RecommendationStep(
                        state=row["state"],
                        at=as_utc(row["at"]),
                        actor=row["actor"],
                        actor_role=row["actor_role"],
                        note=row["note"],
                    )
                )
        return out

    def record(
        self,
        warning_id: str,
        rid: str,
        state: Step,
        *,
        now: datetime,
        actor: str,
        actor_role: str | None,
        note: str = "",
    ) -> list[RecommendationStep]:
        """Append one step; InvalidTransition if the recommendation's state does not allow it (or another
        operator's step got there first). Returns the recommendation's steps, this one last."""
        before = self.history(warning_id).get(rid, [])
        current = before[-1].state if before else "proposed"
        if state not in NEXT[current]:
            raise InvalidTransition(f"recommendation {rid} is {current}; it cannot become {state}")
        step = RecommendationStep(state=state, at=as_utc(now), actor=actor, actor_role=actor_role, note=note)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    steps.insert().values(
                        warning_id=warning_id, rid=rid, seq=len(before) + 1, **step.model_dump()
                    )
                )
        except sa.exc.IntegrityError:
            raise InvalidTransition(f"recommendation {rid} changed while becoming {state}") from None
        return [*before, step]


def state_of(history: list[RecommendationStep]) -> State:
    return history[-1].state if history else "proposed"
